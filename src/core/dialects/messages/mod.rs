//! Anthropic's Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`),
//! so Claude Code and the Anthropic SDKs can use N-1's ensembles: requests
//! decoded into the internal request (`decode.rs`), answers and event streams
//! encoded as `message` objects and Anthropic's stream events (`encode.rs`).
//! The ensembles, keys, limits, resilience and `n1` metadata are the same as
//! for Chat Completions; only the wire format differs.
//!
//! What does not map onto the internal request is accepted and dropped:
//! thinking blocks of earlier turns, server (hosted) tools (named in
//! `n1.ignored_tools`), `thinking`, `service_tier`, `container`, `mcp_servers`,
//! cache control and the like. Anthropic's headers (`anthropic-version`,
//! `anthropic-beta`) need no check.

mod decode;
mod encode;

pub use decode::{count_tokens, decode, decode_count};
pub use encode::{reply, MessagesStream};

#[cfg(test)]
mod tests;
