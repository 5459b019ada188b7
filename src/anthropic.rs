//! Anthropic's Messages API as a provider: OpenAI request bodies translated
//! to it, and its replies and streams translated back to the OpenAI shape, so
//! the rest of N-1 (relay, usage, metadata) sees one wire format.

use serde_json::{json, Map, Value};

use crate::config::ModelSpec;
use crate::request::content_text;
use crate::response::Completion;
use crate::sse;
use crate::usage::Usage;

pub const VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when neither client nor config set one.
const DEFAULT_MAX_TOKENS: u64 = 4096;

fn image_block(url: &str) -> Value {
    match url.strip_prefix("data:").and_then(|rest| rest.split_once(',')) {
        Some((meta, data)) => {
            // `data:<media>[;params][;base64],<data>`: Anthropic takes base64 only,
            // so percent-encoded (plain) data URLs are decoded and re-encoded.
            let base64 = meta.rsplit(';').next().is_some_and(|p| p.eq_ignore_ascii_case("base64"));
            let media = meta.split(';').next().filter(|m| !m.is_empty()).unwrap_or("text/plain");
            let data = if base64 { data.to_owned() } else { base64_encode(&crate::url::percent_decode(data)) };
            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
        }
        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn content_blocks(content: &Value) -> Value {
    match content {
        Value::Array(parts) => Value::Array(
            parts
                .iter()
                .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                    Some("text") => Some(json!({"type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or("")})),
                    Some("image_url") => p.pointer("/image_url/url").and_then(Value::as_str).map(image_block),
                    _ => None,
                })
                .collect(),
        ),
        other => Value::String(content_text(other)),
    }
}

/// An OpenAI chat completion body → an Anthropic Messages body.
pub fn request(openai: &Value, model: &ModelSpec) -> Value {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for m in openai["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str).unwrap_or("user") {
            "system" | "developer" => system.push(content_text(content)),
            "assistant" => {
                let mut blocks = Vec::new();
                let text = content_text(content);
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in m.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                    let args = c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": c.get("id").cloned().unwrap_or(Value::Null),
                        "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "input": serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!({})),
                    }));
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
            }
            "tool" | "function" => messages.push(json!({"role": "user", "content": [{
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                "content": content_text(content),
            }]})),
            _ => messages.push(json!({"role": "user", "content": content_blocks(content)})),
        }
    }
    let max_tokens = openai
        .get("max_completion_tokens")
        .or_else(|| openai.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = Map::new();
    body.insert("model".into(), model.model.as_str().into());
    body.insert("max_tokens".into(), max_tokens.into());
    body.insert("messages".into(), messages.into());
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    if let Some(t) = openai.get("temperature").and_then(Value::as_f64) {
        // Anthropic's range is 0..1.
        body.insert("temperature".into(), t.min(1.0).into());
    }
    if let Some(p) = openai.get("top_p").filter(|v| v.is_number()) {
        body.insert("top_p".into(), p.clone());
    }
    match openai.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            body.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(tools) = openai.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                json!({
                    "name": f.get("name").cloned().unwrap_or(Value::Null),
                    "description": f.get("description").cloned().unwrap_or_else(|| "".into()),
                    "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
                })
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    let choice = match openai.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::Object(o)) => o.get("function").and_then(|f| f.get("name")).map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    };
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    if let Some(u) = openai.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    if openai.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".into(), true.into());
    }
    for (k, v) in &model.extra_body {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    }
}

fn usage(u: &Value) -> Option<Usage> {
    let input = u.get("input_tokens").and_then(Value::as_u64)?;
    let output = u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0);
    Some(Usage { prompt_tokens: input, completion_tokens: output, total_tokens: input + output })
}

/// An Anthropic Messages reply → a completion.
pub fn response(body: &str) -> Result<Completion, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| "the upstream returned malformed JSON".to_owned())?;
    let blocks = v.get("content").and_then(Value::as_array).ok_or("the upstream returned no content")?;
    let text: String = blocks.iter().filter_map(|b| (b["type"] == "text").then(|| b["text"].as_str()).flatten()).collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    Ok(Completion {
        message,
        finish_reason: Some(finish_reason(v.get("stop_reason").and_then(Value::as_str)).into()),
        usage: v.get("usage").and_then(usage),
    })
}

/// Anthropic stream events → OpenAI chunk events (`data: {...}` / `[DONE]`),
/// chunk in, chunk out.
pub type StreamTranslator = sse::Translator<StreamState>;

#[derive(Default)]
pub struct StreamState {
    input_tokens: u64,
    /// Anthropic content block index → OpenAI tool call index.
    tools: Vec<(u64, usize)>,
}

impl StreamState {
    fn chunk(out: &mut Vec<u8>, delta: Value, finish: Option<&str>) {
        let c = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        sse::encode_data(out, &c.to_string());
    }
}

impl sse::Translate for StreamState {
    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            // Not JSON: pass it on so the relay reports a malformed stream.
            sse::encode_data(out, data);
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.input_tokens = v.pointer("/message/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
            }
            Some("content_block_start") if v.pointer("/content_block/type") == Some(&json!("tool_use")) => {
                let index = self.tools.len();
                self.tools.push((v["index"].as_u64().unwrap_or(0), index));
                let b = &v["content_block"];
                Self::chunk(out, json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}}]}), None);
            }
            Some("content_block_delta") => match v.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => Self::chunk(out, json!({"content": v["delta"]["text"]}), None),
                Some("input_json_delta") => {
                    let block = v["index"].as_u64().unwrap_or(0);
                    if let Some((_, index)) = self.tools.iter().find(|(b, _)| *b == block) {
                        Self::chunk(out, json!({"tool_calls": [{"index": index, "function": {"arguments": v["delta"]["partial_json"]}}]}), None);
                    }
                }
                _ => {}
            },
            Some("message_delta") => {
                let stop = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                Self::chunk(out, json!({}), Some(finish_reason(stop)));
                let output = v.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0);
                let u = Usage { prompt_tokens: self.input_tokens, completion_tokens: output, total_tokens: self.input_tokens + output };
                sse::encode_data(out, &json!({"object": "chat.completion.chunk", "choices": [], "usage": u}).to_string());
            }
            Some("message_stop") => out.extend_from_slice(sse::DONE),
            Some("error") => sse::encode_data(out, &json!({"error": v["error"]}).to_string()),
            _ => {} // ping, content_block_stop, text block starts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_config, ConfigOptions};

    fn spec() -> ModelSpec {
        let cfg = json!({"ensembles": {"e": {"summary": {"provider": "anthropic", "model": "claude-x", "extra_body": {"top_k": 3}}}}});
        parse_config(&cfg.to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0).summary.remove(0)
    }

    #[test]
    fn default_endpoint() {
        assert_eq!(spec().endpoint, "https://api.anthropic.com/v1/messages");
    }

    #[test]
    fn translates_a_request() {
        let openai = json!({
            "model": "x", "stream": true, "temperature": 1.5, "max_tokens": 100, "stop": "END", "user": "u1",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        });
        let a = request(&openai, &spec());
        assert_eq!(a["model"], "claude-x");
        assert_eq!(a["system"], "Be brief.");
        assert_eq!(a["max_tokens"], 100);
        assert_eq!(a["temperature"], 1.0);
        assert_eq!(a["stop_sequences"], json!(["END"]));
        assert_eq!(a["stream"], true);
        assert_eq!(a["top_k"], 3);
        assert_eq!(a["metadata"]["user_id"], "u1");
        assert_eq!(a["messages"][0]["content"][1], json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}));
        assert_eq!(a["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(a["messages"][1]["content"][0]["input"]["a"], 1);
        assert_eq!(a["messages"][2]["content"][0]["tool_use_id"], "t1");
        assert_eq!(a["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(a["tool_choice"]["type"], "any");
    }

    #[test]
    fn data_urls_become_base64_sources() {
        let src = |url: &str| image_block(url)["source"].clone();
        assert_eq!(src("data:image/png;base64,iVBORw0KGgo="), json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}));
        // Not base64: percent-decoded, then base64-encoded ("<svg/>" and "hi!").
        assert_eq!(src("data:image/svg+xml,%3Csvg%2F%3E"), json!({"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zy8+"}));
        assert_eq!(src("data:text/plain;charset=utf-8,hi!"), json!({"type": "base64", "media_type": "text/plain", "data": "aGkh"}));
        assert_eq!(src("data:,a"), json!({"type": "base64", "media_type": "text/plain", "data": "YQ=="}));
        assert_eq!(src("https://x.test/a.png"), json!({"type": "url", "url": "https://x.test/a.png"}));
    }

    #[test]
    fn translates_a_reply() {
        let c = response(r#"{"content":[{"type":"text","text":"Hi"},{"type":"tool_use","id":"t","name":"f","input":{"x":2}}],"stop_reason":"tool_use","usage":{"input_tokens":7,"output_tokens":3}}"#).unwrap();
        assert_eq!(c.message["content"], "Hi");
        assert_eq!(c.message["tool_calls"][0]["function"]["arguments"], "{\"x\":2}");
        assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.usage.unwrap().total_tokens, 10);
        assert!(response("{").is_err());
    }

    #[test]
    fn translates_a_stream() {
        let src = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut t = StreamTranslator::default();
        let mut out = Vec::new();
        for b in src.as_bytes().chunks(7) {
            t.push(b, &mut out);
        }
        let mut relay = crate::relay::Relay::new(crate::response::ReplyIds { id: "i".into(), created: 1, model: "e".into() }, vec![]);
        let mut client = Vec::new();
        relay.push(&out, &mut client).unwrap();
        relay.end(&mut client).unwrap();
        assert_eq!(relay.usage().unwrap().total_tokens, 7);
        let text = String::from_utf8(client).unwrap();
        assert!(text.contains("\"content\":\"Hel\"") && text.contains("\"content\":\"lo\""), "{text}");
    }
}
