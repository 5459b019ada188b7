//! Edge: stored responses, for the Responses API's `store`,
//! `previous_response_id` and `GET`/`DELETE /v1/responses/{id}`: each holds
//! its whole conversation (the input and the answer, without that request's
//! instructions), the response object as the client received it, and the name
//! of the key that made it, in the KV namespace bound as `N1_STORE`, for 30
//! days. Another key's response is as unknown as one that does not exist.

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

fn no_store(param: Option<&str>) -> N1Error {
    N1Error::InvalidRequest {
        message: "This deployment stores no responses (the operator must bind a KV namespace as N1_STORE).".into(),
        param: param.map(str::to_owned),
        code: Some("store_not_configured"),
    }
}

fn not_found(id: &str) -> N1Error {
    N1Error::InvalidRequest {
        message: format!("Previous response with id `{id}` not found (responses are kept for 30 days, for the key that made them)."),
        param: Some("previous_response_id".into()),
        code: Some("previous_response_not_found"),
    }
}

/// A stored response, if there is one and `owner` made it (for anyone else it
/// does not exist); each caller says "not found" in its own way.
async fn stored(kv: &worker::wasm_bindgen::JsValue, id: &str, owner: &str) -> Result<Option<Value>, N1Error> {
    let text = kv::get(kv, id).await.map_err(|_| N1Error::Internal("reading the N1_STORE KV namespace failed".into()))?;
    let stored: Option<Value> = text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(stored.filter(|s| s.get("owner").and_then(Value::as_str) == Some(owner)))
}

/// The conversation of a stored response, if `owner` made it.
pub async fn load(env: &Env, id: &str, owner: &str) -> Result<Vec<Message>, N1Error> {
    let kv = kv::namespace(env, BINDING).ok_or_else(|| no_store(Some("previous_response_id")))?;
    let mut stored = stored(&kv, id, owner).await?.ok_or_else(|| not_found(id))?;
    decode_messages(stored.get_mut("messages").map(Value::take)).map_err(|_| not_found(id))
}

/// `GET /v1/responses/{id}`: the response object; `DELETE`: forget it. For
/// the key that made it only.
pub async fn respond(env: &Env, method: &str, id: &str, owner: &str) -> Result<super::http::Response, N1Error> {
    let kv = kv::namespace(env, BINDING).ok_or_else(|| no_store(None))?;
    let missing = || N1Error::ResponseNotFound(id.to_owned());
    let stored = stored(&kv, id, owner).await?.ok_or_else(missing)?;
    if method == "DELETE" {
        kv::delete(&kv, id).await.map_err(|_| N1Error::Internal("deleting from the N1_STORE KV namespace failed".into()))?;
        let body = serde_json::to_vec(&Deleted { id, object: "response", deleted: true }).unwrap_or_default();
        return Ok(super::http::json(200, body));
    }
    let response = stored.get("response").ok_or_else(missing)?;
    Ok(super::http::json(200, serde_json::to_vec(response).unwrap_or_default()))
}

#[derive(Serialize)]
struct Deleted<'a> {
    id: &'a str,
    object: &'a str,
    deleted: bool,
}

/// Store a response: its conversation (`messages` and the answer as the
/// assistant's turn) and `response`, the object the client received.
/// Without the binding nothing is stored (the README says so).
pub async fn save(env: &Env, id: &str, owner: &str, mut messages: Vec<Message>, answer: &Completion, response: &[u8]) {
    let Some(kv) = kv::namespace(env, BINDING) else { return };
    let content = if answer.text.is_empty() && !answer.tool_calls.is_empty() { Content::None } else { Content::Text(answer.text.clone()) };
    messages.push(Message { content, tool_calls: answer.tool_calls.clone(), ..Message::new(Role::Assistant, "") });
    let Ok(mut text) = serde_json::to_vec(&Stored { owner, messages: &messages }) else { return };
    // `{…}` → `{…,"response":<the object>}`
    text.pop();
    text.extend_from_slice(b",\"response\":");
    text.extend_from_slice(response);
    text.push(b'}');
    let Ok(text) = std::str::from_utf8(&text) else { return };
    let _ = kv::put(&kv, id, text, TTL_S).await;
}
