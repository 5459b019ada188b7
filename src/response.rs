//! OpenAI response objects: reading upstream completions, and writing ours
//! (`chat.completion`, `chat.completion.chunk`) with the `n1` metadata.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::Failure;
use crate::usage::Usage;

/// One successful upstream completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `choices[0].message` as the upstream sent it (content, tool_calls, refusal...).
    pub message: Value,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

impl Completion {
    pub fn text(&self) -> String {
        self.message.get("content").map(crate::request::content_text).unwrap_or_default()
    }
}

/// Longest upstream error text we quote, after redaction.
const REASON_MAX: usize = 200;

/// A short, secret-free reason from an upstream error body: its
/// `error.message` (or the start of the text), cut to a line and `REASON_MAX` chars.
pub fn summarize_error(body: &str, secrets: &[&str]) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let msg = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error").filter(|e| e.is_string()))
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"))
        })
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if body.trim_start().starts_with('<') {
                "the upstream returned an HTML page".to_owned()
            } else {
                body.to_owned()
            }
        });
    clean_reason(&msg, secrets)
}

/// One line, bounded, with every known secret (and anything shaped like a
/// bearer token) removed.
pub fn clean_reason(msg: &str, secrets: &[&str]) -> String {
    let mut s: String = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets.iter().filter(|x| x.len() >= 4) {
        s = s.replace(secret, "[redacted]");
    }
    if s.chars().count() > REASON_MAX {
        s = s.chars().take(REASON_MAX).collect::<String>() + "…";
    }
    if s.is_empty() {
        s = "no error message".into();
    }
    s
}

/// Parse a 2xx chat completion body.
pub fn parse_completion(body: &str) -> Result<Completion, String> {
    let mut v: Value = serde_json::from_str(body).map_err(|_| "the upstream returned malformed JSON".to_owned())?;
    let usage = v.get("usage").and_then(Usage::from_json);
    let choice = v
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .and_then(|c| c.first_mut())
        .ok_or_else(|| "the upstream returned no choices".to_owned())?;
    // Moved out of the parsed body, not copied (answers can be long).
    let message = match choice.get_mut("message") {
        Some(m) if m.is_object() => m.take(),
        _ => return Err("the upstream returned a choice without a message".to_owned()),
    };
    let finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
    Ok(Completion { message, finish_reason, usage })
}

/// What one panel member did, for the `n1` metadata.
#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub model: String,
    /// `ok`, `error` or `timeout`.
    pub status: &'static str,
    pub latency_ms: u64,
    /// Calls made, retries included.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// The answer was longer than `max_answer_chars` and was cut in the synthesis prompt.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The `n1` extension object.
#[derive(Debug, Clone, Serialize)]
pub struct N1Meta {
    pub ensemble: String,
    pub panel: Vec<MemberReport>,
    /// Successful panel answers / panel size.
    pub panel_ok: usize,
    pub panel_total: usize,
    /// How the panel phase ended: `all`, `quorum` or `timeout`.
    pub panel_end: &'static str,
    pub summary: SummaryReport,
    /// True when fewer than all panel members contributed.
    pub degraded: bool,
    /// Every layer's reports, when the ensemble has more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Vec<MemberReport>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryReport {
    pub model: String,
    /// `ok`, or `best_panel_answer` when the summary failed and the first
    /// successful panel answer (from `model`) was returned instead.
    pub status: &'static str,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failure>,
}

/// Identity shared by every object of one reply.
#[derive(Debug, Clone)]
pub struct ReplyIds {
    pub id: String,
    pub created: u64,
    pub model: String,
}

pub fn chat_completion(ids: &ReplyIds, summary: &Completion, usage: &Usage, meta: &N1Meta) -> Value {
    let mut message = match &summary.message {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    message.insert("role".into(), "assistant".into());
    message.entry("content").or_insert(Value::Null);
    json!({
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": summary.finish_reason.as_deref().unwrap_or("stop"),
        }],
        "usage": usage,
        "n1": meta,
    })
}

/// A chunk with one choice delta.
pub fn chunk(ids: &ReplyIds, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    })
}

/// A panel progress event, for clients that asked for them: a chunk with
/// empty content (standard clients append nothing) and an `n1_progress` field.
pub fn progress_chunk(ids: &ReplyIds, event: Value) -> Value {
    let mut c = chunk(ids, json!({"content": ""}), None);
    c["n1_progress"] = event;
    c
}

/// The `include_usage` chunk: no choices, the summed usage.
pub fn usage_chunk(ids: &ReplyIds, usage: &Usage) -> Value {
    json!({
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [],
        "usage": usage,
    })
}

/// A stream error event body, in the OpenAI error shape.
pub fn error_event(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_completion() {
        let c = parse_completion(
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(c.text(), "hi");
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(c.usage.unwrap().total_tokens, 3);
    }

    #[test]
    fn malformed_completions_are_errors() {
        assert!(parse_completion("{\"choices\": [").unwrap_err().contains("malformed"));
        assert!(parse_completion("{\"choices\": []}").unwrap_err().contains("no choices"));
        assert!(parse_completion("{\"choices\": [{}]}").is_err());
    }

    #[test]
    fn error_summaries_are_short_and_secret_free() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-abcdef123456. Find your key at https://x"}}"#;
        let s = summarize_error(body, &["sk-abcdef123456"]);
        assert!(!s.contains("sk-abcdef123456"), "{s}");
        assert!(s.contains("[redacted]"));
        let long = "x".repeat(1000);
        assert!(summarize_error(&long, &[]).chars().count() <= REASON_MAX + 1);
        assert_eq!(summarize_error("<html><body>502</body></html>", &[]), "the upstream returned an HTML page");
        assert_eq!(summarize_error("", &[]), "no error message");
    }

    #[test]
    fn completion_object_has_openai_shape() {
        let ids = ReplyIds { id: "chatcmpl-x".into(), created: 5, model: "council".into() };
        let c = parse_completion(r#"{"choices":[{"message":{"role":"assistant","content":"A"},"finish_reason":"length"}]}"#).unwrap();
        let meta = N1Meta {
            ensemble: "council".into(),
            panel: vec![],
            panel_ok: 0,
            panel_total: 0,
            panel_end: "all",
            layers: None,
            summary: SummaryReport { model: "s".into(), status: "ok", latency_ms: 1, usage: None, failed: vec![] },
            degraded: false,
        };
        let v = chat_completion(&ids, &c, &Usage::default(), &meta);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "council");
        assert_eq!(v["choices"][0]["message"]["content"], "A");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["total_tokens"], 0);
        assert_eq!(v["n1"]["summary"]["model"], "s");
    }
}
