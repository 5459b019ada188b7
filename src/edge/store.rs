//! Edge: stored conversations, for the Responses API's `store` and
//! `previous_response_id`: each stored response holds its whole conversation
//! (the input and the answer, without that request's instructions) and the
//! name of the key that made it, in the KV namespace bound as `N1_STORE`, for
//! 30 days. Another key's response is as unknown as one that does not exist.

use serde::Serialize;
use serde_json::Value;
use worker::Env;

use super::kv;

use crate::core::dialects::chat::decode_messages;
use crate::core::error::N1Error;
use crate::core::events::Completion;
use crate::core::request::{Content, Message, Role};

const BINDING: &str = "N1_STORE";
const TTL_S: u64 = 30 * 24 * 3600;

#[derive(Serialize)]
struct Stored<'a> {
    owner: &'a str,
    messages: &'a [Message],
}

fn not_found(id: &str) -> N1Error {
    N1Error::InvalidRequest {
        message: format!("Previous response with id `{id}` not found (responses are kept for 30 days, for the key that made them)."),
        param: Some("previous_response_id".into()),
        code: Some("previous_response_not_found"),
    }
}

/// The conversation of a stored response, if `owner` made it.
pub async fn load(env: &Env, id: &str, owner: &str) -> Result<Vec<Message>, N1Error> {
    let kv = kv::namespace(env, BINDING).ok_or_else(|| N1Error::InvalidRequest {
        message: "This deployment stores no responses, so `previous_response_id` cannot be used (the operator must bind a KV namespace as N1_STORE).".into(),
        param: Some("previous_response_id".into()),
        code: Some("store_not_configured"),
    })?;
    let text = kv::get(&kv, id).await.map_err(|_| N1Error::Internal("reading the N1_STORE KV namespace failed".into()))?;
    let mut stored: Value = text.and_then(|t| serde_json::from_str(&t).ok()).ok_or_else(|| not_found(id))?;
    if stored.get("owner").and_then(Value::as_str) != Some(owner) {
        return Err(not_found(id));
    }
    decode_messages(stored.get_mut("messages").map(Value::take)).map_err(|_| not_found(id))
}

/// Store a response's conversation: `messages` and the answer as the assistant's turn.
/// Without the binding nothing is stored (the README says so).
pub async fn save(env: &Env, id: &str, owner: &str, mut messages: Vec<Message>, answer: &Completion) {
    let Some(kv) = kv::namespace(env, BINDING) else { return };
    let content = if answer.text.is_empty() && !answer.tool_calls.is_empty() { Content::None } else { Content::Text(answer.text.clone()) };
    messages.push(Message { content, tool_calls: answer.tool_calls.clone(), ..Message::new(Role::Assistant, "") });
    let Ok(text) = serde_json::to_string(&Stored { owner, messages: &messages }) else { return };
    let _ = kv::put(&kv, id, &text, TTL_S).await;
}
