//! The OpenAI Responses API (`POST /v1/responses`): requests decoded into the
//! internal request (`decode.rs`), answers encoded as `response` objects and
//! event streams as the documented `response.*` events (`encode.rs`).

mod decode;
mod encode;

pub use decode::decode;
pub use encode::{reply, ResponsesStream};

#[cfg(test)]
mod tests;
