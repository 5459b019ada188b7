//! Cloudflare Workers AI (the `AI` binding) as a provider: OpenAI bodies to
//! its input, and its outputs and streams back to the OpenAI shape. Also the
//! built-in default ensemble, so a deployed worker answers with no API keys.

use serde_json::{json, Map, Value};

use crate::response::{parse_completion, Completion};
use crate::sse;
use crate::usage::Usage;

/// OpenAI fields Workers AI text models accept.
const FIELDS: &[&str] = &[
    "messages", "max_tokens", "temperature", "top_p", "top_k", "seed", "repetition_penalty",
    "frequency_penalty", "presence_penalty", "tools", "response_format", "stream",
];

/// An OpenAI chat completion body → the input of `env.AI.run(model, input)`.
pub fn input(openai: &Value, extra_body: &Map<String, Value>) -> Value {
    let mut input = Map::new();
    for &k in FIELDS {
        if let Some(v) = openai.get(k).filter(|v| !v.is_null()) {
            input.insert(k.into(), v.clone());
        }
    }
    if let Some(n) = openai.get("max_completion_tokens").filter(|v| v.is_u64()) {
        input.entry("max_tokens").or_insert_with(|| n.clone());
    }
    for (k, v) in extra_body {
        input.insert(k.clone(), v.clone());
    }
    Value::Object(input)
}

/// A non-streaming output: `{"response": "...", "usage": {...}, "tool_calls": [...]}`,
/// or an OpenAI-shaped object (some models answer in that format).
pub fn output(v: &Value) -> Result<Completion, String> {
    if v.get("choices").is_some() {
        return parse_completion(&v.to_string());
    }
    let text = match v.get("response") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let calls: Vec<Value> = v
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .enumerate()
                .map(|(i, t)| {
                    json!({"id": format!("call_{i}"), "type": "function", "function": {"name": t["name"], "arguments": t["arguments"].to_string()}})
                })
                .collect()
        })
        .unwrap_or_default();
    if text.is_empty() && calls.is_empty() && v.get("response").is_none() {
        return Err("Workers AI returned no response".into());
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    Ok(Completion {
        message,
        finish_reason: Some(if v.get("tool_calls").is_some() { "tool_calls" } else { "stop" }.into()),
        usage: v.get("usage").and_then(Usage::from_json),
    })
}

/// Workers AI stream (`data: {"response": "tok"}` … `data: [DONE]`) → OpenAI chunks.
pub type StreamTranslator = sse::Translator<StreamState>;

#[derive(Default)]
pub struct StreamState {
    usage: Option<Usage>,
}

impl sse::Translate for StreamState {
    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        if data.trim() == "[DONE]" {
            let finish = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            sse::encode_data(out, &finish.to_string());
            if let Some(u) = self.usage {
                sse::encode_data(out, &json!({"object": "chat.completion.chunk", "choices": [], "usage": u}).to_string());
            }
            out.extend_from_slice(sse::DONE);
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            sse::encode_data(out, data); // the relay reports it as malformed
            return;
        };
        if v.get("choices").is_some() || v.get("error").is_some_and(|e| !e.is_null()) {
            sse::encode_data(out, data); // already OpenAI-shaped
            return;
        }
        if let Some(u) = v.get("usage").and_then(Usage::from_json) {
            self.usage = Some(u);
        }
        if let Some(t) = v.get("response").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let c = json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]});
            sse::encode_data(out, &c.to_string());
        }
    }
}

/// The ensemble used when no configuration exists and the `AI` binding does:
/// Workers AI models only, so a fresh deployment answers without any API key.
pub const DEFAULT_CONFIG: &str = r#"{
  "default_ensemble": "workers-ai",
  "ensembles": {
    "workers-ai": {
      "description": "Built-in default: three Workers AI models answer, Llama 3.3 70B synthesizes (no API keys needed)",
      "panel": [
        {"provider": "workers-ai", "model": "@cf/meta/llama-3.3-70b-instruct-fp8-fast"},
        {"provider": "workers-ai", "model": "@cf/mistralai/mistral-small-3.1-24b-instruct"},
        {"provider": "workers-ai", "model": "@cf/qwen/qwen2.5-coder-32b-instruct"}
      ],
      "summary": {"provider": "workers-ai", "model": "@cf/meta/llama-3.3-70b-instruct-fp8-fast"},
      "vision": {
        "panel": [{"provider": "workers-ai", "model": "@cf/meta/llama-4-scout-17b-16e-instruct"}],
        "summary": {"provider": "workers-ai", "model": "@cf/meta/llama-4-scout-17b-16e-instruct"}
      }
    }
  }
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keeps_known_fields() {
        let i = input(&json!({"model": "x", "messages": [], "max_completion_tokens": 9, "n1": {}, "user": "u", "seed": 2}), &Map::new());
        assert_eq!(i, json!({"messages": [], "max_tokens": 9, "seed": 2}));
    }

    #[test]
    fn reads_outputs() {
        let c = output(&json!({"response": "hi", "usage": {"prompt_tokens": 3, "completion_tokens": 1}})).unwrap();
        assert_eq!(c.text(), "hi");
        assert_eq!(c.usage.unwrap().total_tokens, 4);
        let t = output(&json!({"response": null, "tool_calls": [{"name": "f", "arguments": {"a": 1}}]})).unwrap();
        assert_eq!(t.message["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert!(output(&json!({"nothing": 1})).is_err());
    }

    #[test]
    fn translates_a_stream() {
        let mut t = StreamTranslator::default();
        let mut out = Vec::new();
        let src = b"data: {\"response\":\"Hel\"}\n\ndata: {\"response\":\"lo\"}\n\ndata: {\"response\":\"\",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\ndata: [DONE]\n\n";
        for b in src.chunks(5) {
            t.push(b, &mut out);
        }
        let mut relay = crate::relay::Relay::new(crate::response::ReplyIds { id: "i".into(), created: 1, model: "e".into() }, vec![]);
        let mut client = Vec::new();
        relay.push(&out, &mut client).unwrap();
        relay.end(&mut client).unwrap();
        assert_eq!(relay.usage().unwrap().total_tokens, 6);
        assert!(String::from_utf8(client).unwrap().contains("\"content\":\"lo\""));
    }

    #[test]
    fn default_config_parses() {
        let c = crate::config::parse_config(DEFAULT_CONFIG, Default::default()).unwrap();
        assert_eq!(c.default_ensemble, "workers-ai");
        assert_eq!(c.ensembles[0].panel.len(), 3);
    }
}
