//! N-1 on Cloudflare Workers: one OpenAI-compatible endpoint that asks a panel
//! of models in parallel and has a summary model synthesize their answers.
//!
//! `core` is pure and host-tested; `edge` is the Workers glue (wasm only).
//! A request's path starts in `edge/mod.rs`.

pub mod core;

#[cfg(target_arch = "wasm32")]
mod edge;
