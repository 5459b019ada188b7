//! The pure core: everything N-1 decides, built and unit-tested on the host
//! (`cargo test`). No I/O happens here: the edge (`crate::edge`) reads the
//! request, calls the providers through `ensemble::Runtime` and writes the reply.
//!
//! - `dialects/`   inbound APIs: requests decoded into `request::Request`, answers encoded
//! - `request`     the internal request; `events`: the internal event stream and completions
//! - `ensemble/`   the policy: panel phase, summary phase, retries, prompt, `n1` reports
//! - `providers/`  outbound APIs: upstream bodies built, replies and streams decoded
//! - `config/`     the configuration (native and original N-1 formats), checked
//! - `cost`        prices, what each call cost (the `Meter`); `budget`: what a key may spend
//! - `auth`, `cors`, `secrets`, `error`: who may call, and what may be said back

pub mod auth;
pub mod budget;
pub mod config;
pub mod cors;
pub mod cost;
pub mod dialects;
pub mod ensemble;
pub mod error;
pub mod events;
pub mod json;
pub mod providers;
pub mod request;
pub mod secrets;
pub mod sse;
pub mod url;
pub mod usage;
