//! OpenAI Chat Completions (`POST /v1/chat/completions`): requests decoded
//! into the internal request (`decode.rs`), answers and event streams encoded
//! as `chat.completion` objects and `chat.completion.chunk` events (`encode.rs`).

mod decode;
mod encode;

pub use decode::{decode, decode_messages, decode_part, decode_tool_choice, parse_json};
pub use encode::{reply, ChatStream};

#[cfg(test)]
mod tests;
