//! Workers AI: the input of `AI.run`, its outputs and streams (its own shape
//! and OpenAI's), the binding's errors, and the built-in default ensemble.
//! The scenarios every provider shares are in `providers/tests.rs`.

use super::*;
use crate::core::config::{parse_config, ModelSpec};
use crate::core::ensemble::retry::is_retryable;
use crate::core::providers::tests::{body, body_text, decode, decode_reads, req, spec_of};
use crate::core::providers::Provider;
use crate::core::request::Request;
use serde_json::json;

fn wai(extra: Value) -> ModelSpec {
    let mut m = json!({"provider": "workers-ai", "model": "@cf/x/y"});
    m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec_of(m)
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn input(r: &Request, stream: bool, with_tools: bool) -> Value {
    body(Provider::WorkersAi, &wai(json!({})), r, stream, with_tools)
}


// ---- the input of AI.run

#[test]
fn input_keeps_known_fields() {
    let r = req(json!({"model": "x", "messages": user("hi"), "max_completion_tokens": 9, "n1": {}, "user": "u", "seed": 2}));
    assert_eq!(input(&r, false, false), json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "seed": 2}));
}

#[test]
fn input_forwards_what_workers_ai_takes_and_nothing_else() {
    let r = req(json!({
        "messages": user("hi"), "temperature": 0.3, "top_p": 0.8, "max_tokens": 100,
        "top_k": 40, "repetition_penalty": 1.1, "frequency_penalty": 0.2, "presence_penalty": 0.1,
        "response_format": {"type": "json_object"},
        "stop": ["x"], "logit_bias": {"1": 2}, "x_vendor": 1, "reasoning_effort": "high", "user": "u",
        "stream_options": {"include_usage": true}, "parallel_tool_calls": true
    }));
    assert_eq!(
        input(&r, false, false),
        json!({
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "temperature": 0.3, "top_p": 0.8,
            "response_format": {"type": "json_object"},
            "top_k": 40, "repetition_penalty": 1.1, "frequency_penalty": 0.2, "presence_penalty": 0.1
        })
    );
}

#[test]
fn input_uses_the_configured_settings_when_the_client_sets_none() {
    let m = wai(json!({"max_tokens": 4096, "temperature": 0.6}));
    let plain = req(json!({"messages": user("hi")}));
    let v = body(Provider::WorkersAi, &m, &plain, false, false);
    assert_eq!((v["max_tokens"].as_u64(), v["temperature"].as_f64()), (Some(4096), Some(0.6)));
    let client = req(json!({"messages": user("hi"), "max_tokens": 10, "temperature": 1.5}));
    let v = body(Provider::WorkersAi, &m, &client, false, false);
    assert_eq!((v["max_tokens"].as_u64(), v["temperature"].as_f64()), (Some(10), Some(1.5)));
    let v = input(&plain, false, false);
    assert!(v.get("max_tokens").is_none() && v.get("temperature").is_none(), "{v}");
}

#[test]
fn extra_body_wins() {
    let m = wai(json!({"max_tokens": 4096, "extra_body": {"reasoning_effort": "low", "max_tokens": 8000, "top_k": 5}}));
    let r = req(json!({"messages": user("hi"), "max_tokens": 10, "top_k": 40, "reasoning_effort": "high"}));
    let (text, v) = body_text(Provider::WorkersAi, &m, &r, None, false, false);
    assert_eq!(v["reasoning_effort"], "low");
    assert_eq!(v["max_tokens"], 8000);
    assert_eq!(v["top_k"], 5);
    for k in ["\"max_tokens\"", "\"top_k\"", "\"reasoning_effort\""] {
        assert_eq!(text.matches(k).count(), 1, "{k}: {text}");
    }
}

/// OpenAI's bodies never let `extra_body` touch the conversation or the stream
/// flag (`OWNED`); Workers AI's input writes `messages` unconditionally and
/// then every `extra_body` entry, so an `extra_body` with `messages` yields
/// a JSON object with the key twice (the binding would keep the operator's
/// and drop the conversation).
#[test]
fn extra_body_never_duplicates_a_key() {
    let m = wai(json!({"extra_body": {"messages": [], "stream": false}}));
    let (text, v) = body_text(Provider::WorkersAi, &m, &req(json!({"messages": user("hi")})), None, true, false);
    assert_eq!(text.matches("\"messages\"").count(), 1, "{text}");
    assert_eq!(text.matches("\"stream\"").count(), 1, "{text}");
    assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[test]
fn tools_and_stream_only_when_asked() {
    let r = req(json!({"messages": user("hi"), "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "tool_choice": "auto"}));
    let panel = input(&r, false, false);
    assert!(panel.get("tools").is_none() && panel.get("stream").is_none(), "{panel}");
    let summary = input(&r, true, true);
    assert_eq!(summary["tools"], json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]));
    assert_eq!(summary["stream"], true);
    assert!(summary.get("tool_choice").is_none(), "Workers AI takes no tool_choice: {summary}");
}

#[test]
fn input_messages_are_openai_shaped_with_ours_first() {
    let r = req(json!({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
    ]}));
    let (_, v) = body_text(Provider::WorkersAi, &wai(json!({})), &r, Some("SYN"), false, false);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "system", "content": "SYN"},
            {"role": "user", "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
        ])
    );
}

// ---- outputs

#[test]
fn reads_outputs() {
    let c = parse_reply(r#"{"response": "hi", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}"#).unwrap();
    assert_eq!(c.text, "hi");
    assert_eq!(c.usage.unwrap().total_tokens, 4);
    assert_eq!(c.finish, Finish::Stop);
    let t = parse_reply(r#"{"response": null, "tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": "{\"b\":2}"}, {"name": "h"}, {"arguments": {}}]}"#).unwrap();
    assert_eq!(t.tool_calls, vec![ToolCall::function("call_0", "f", "{\"a\":1}"), ToolCall::function("call_1", "g", "{\"b\":2}"), ToolCall::function("call_2", "h", "{}")]);
    assert_eq!(t.text, "");
    assert_eq!(t.finish, Finish::ToolCalls);
    assert!(parse_reply(r#"{"nothing": 1}"#).unwrap_err().contains("no response"));
    assert!(parse_reply(r#"{"response": null}"#).is_err());
    assert!(parse_reply("{\"response\": ").unwrap_err().contains("malformed"));
}

#[test]
fn a_json_response_is_its_text() {
    // With `response_format`, some models answer an object rather than a string.
    let c = parse_reply(r#"{"response": {"answer": 4}}"#).unwrap();
    assert_eq!(c.text, "{\"answer\":4}");
}

#[test]
fn openai_shaped_outputs() {
    let c = parse_reply(r#"{"id":"x","choices":[{"message":{"role":"assistant","content":"hi","reasoning_content":"r"},"finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":3}}"#).unwrap();
    assert_eq!((c.text.as_str(), &c.finish), ("hi", &Finish::Length));
    assert_eq!(c.reasoning, Some((crate::core::events::ReasoningField::ReasoningContent, "r".into())));
    assert_eq!(c.usage.unwrap().total_tokens, 5);
    assert!(parse_reply(r#"{"choices": []}"#).unwrap_err().contains("no choices"));
    // A native output whose text mentions choices is still native.
    let c = parse_reply(r#"{"response": "the \"choices\" field"}"#).unwrap();
    assert_eq!(c.text, "the \"choices\" field");
}

// ---- streams

#[test]
fn translates_a_stream() {
    let src = b"data: {\"response\":\"Hel\"}\n\ndata: {\"response\":\"lo\"}\n\ndata: {\"response\":\"\",\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\ndata: [DONE]\n\n";
    let reads: Vec<&[u8]> = src.chunks(5).collect();
    let d = decode_reads(Provider::WorkersAi, &reads);
    assert_eq!(d.result, Ok(()));
    assert_eq!(
        d.events,
        [
            Event::Text("Hel".into()),
            Event::Text("lo".into()),
            Event::Finish(Finish::Stop),
            Event::Usage(Usage { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6, cached_tokens: 0, ..Usage::default() })
        ]
    );
}

#[test]
fn a_native_stream_without_done_is_truncated() {
    let d = decode(Provider::WorkersAi, "data: {\"response\":\"Hel\"}\n\n");
    assert_eq!(d.result, Err(StreamError::Truncated));
    assert_eq!(d.text(), "Hel");
}

#[test]
fn openai_shaped_streams_keep_their_own_finish() {
    let call = r#"{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}"#;
    let src = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{call}]}},\"finish_reason\":null}}]}}\n\n\
         data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"tool_calls\"}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":2}}}}\n\n\
         data: [DONE]\n\n"
    );
    let d = decode(Provider::WorkersAi, &src);
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.finishes(), [Finish::ToolCalls], "one finish, the upstream's: {:?}", d.events);
    let c = d.completion();
    assert_eq!(c.tool_calls, vec![ToolCall::function("c1", "f", "{}")]);
    assert_eq!(c.usage, Some(Usage { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, cached_tokens: 0, ..Usage::default() }));
}

#[test]
fn an_error_event_in_a_native_stream() {
    let d = decode(Provider::WorkersAi, "data: {\"response\":\"a\"}\n\ndata: {\"error\":\"capacity\"}\n\n");
    assert_eq!(d.result, Err(StreamError::Upstream("{\"error\":\"capacity\"}".into())));
    assert_eq!(d.text(), "a");
}

/// The native stream switches to OpenAI's parser when an event's text
/// *contains* `"choices"` or `"error"`, so a model that writes JSON (tokens
/// `{"`, `error`, `": 1}`) sends `{"response":"error"}`: that token, and
/// every token after it, is dropped, and the answer ends with no finish. The
/// check must look at the event's keys (as the original `StreamTranslator`
/// did with `v.get("choices")`), not at its text.
#[test]
fn native_tokens_named_error_or_choices_are_text() {
    for word in ["error", "choices"] {
        let src = format!("data: {{\"response\":\"{{\\\"\"}}\n\ndata: {{\"response\":\"{word}\"}}\n\ndata: {{\"response\":\"\\\": 1}}\"}}\n\ndata: [DONE]\n\n");
        let d = decode(Provider::WorkersAi, &src);
        assert_eq!(d.result, Ok(()), "{word}");
        assert_eq!(d.text(), format!("{{\"{word}\": 1}}"), "{word}: {:?}", d.events);
        assert_eq!(d.finishes(), [Finish::Stop], "{word}");
    }
}

// ---- the binding's errors

#[test]
fn missing_and_deprecated_models_are_model_not_found() {
    let f = binding_failure("@cf/x/gone", "5007: No such model @cf/x/gone or task");
    assert_eq!((f.status, f.kind), (Some(400), FailureKind::ModelNotFound));
    assert!(f.reason.starts_with("model_not_found: Workers AI does not serve `@cf/x/gone` (5007:"), "{}", f.reason);
    assert_eq!(f.model, "@cf/x/gone");
    let f = binding_failure("@cf/meta/llama-3.1-8b-instruct", "AiError: 5028: This model was deprecated on 2026-05-30. Please use an alternative model");
    assert_eq!((f.status, f.kind), (None, FailureKind::ModelNotFound));
    assert!(f.reason.contains("`@cf/meta/llama-3.1-8b-instruct`") && f.reason.contains("deprecated"), "{}", f.reason);
    assert!(f.reason.chars().count() <= 200, "fits a failure reason: {}", f.reason);
    assert_eq!(binding_failure("m", "3042: The model name is invalid").kind, FailureKind::ModelNotFound);
    assert!(!is_retryable(&binding_failure("m", "5007: No such model")), "a missing model is not retried");
}

#[test]
fn other_binding_errors_get_their_documented_status() {
    let f = binding_failure("@cf/p", "5035: This model requires the Workers Paid plan");
    assert_eq!((f.status, f.kind), (Some(403), FailureKind::Error));
    assert!(f.reason.contains("Workers Paid") && f.reason.contains("`@cf/p`"), "{}", f.reason);
    assert!(!is_retryable(&f), "the plan will not change on a retry");
    let capacity = binding_failure("m", "3040: Capacity temporarily exceeded");
    assert_eq!(capacity.status, Some(429));
    assert!(is_retryable(&capacity));
    assert_eq!(binding_failure("m", "InferenceUpstreamError: 3007: Request timeout").status, Some(408));
    assert_eq!(binding_failure("m", "3036: daily free allocation").status, Some(429));
    // No code, an unknown code, or a number that is not a code: as before.
    assert_eq!(binding_failure("m", "network lost"), Failure::error("m", "network lost"));
    assert_eq!(binding_failure("m", "  network lost \n"), Failure::error("m", "network lost"));
    assert_eq!(binding_failure("m", "9999: new error").status, None);
    assert_eq!(binding_failure("m", "id a5007: x").status, None);
    assert_eq!(binding_failure("m", "took 5007 ms").status, None);
    assert_eq!(binding_failure("m", "50070: x").status, None);
    // The first known code wins; a space before the colon is fine.
    assert_eq!(binding_failure("m", "9999: wrapped 3040 : capacity").status, Some(429));
    assert_eq!(binding_failure("m", "5007 : gone").kind, FailureKind::ModelNotFound);
}

// ---- the default ensemble

#[test]
fn default_config_is_the_table() {
    let c = parse_config(&DEFAULT_CONFIG, Default::default()).unwrap();
    assert_eq!(c.default_ensemble, "workers-ai");
    assert_eq!(c.ensembles.len(), 1);
    let e = &c.ensembles[0];
    let ids = |l: &[ModelSpec]| l.iter().map(|m| m.model.clone()).collect::<Vec<_>>();
    let rows = |role: u8| DEFAULT_MODELS.iter().filter(|m| m.roles & role != 0).map(|m| m.id.to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&e.panel), rows(PANEL));
    assert_eq!(ids(&e.summary), rows(SUMMARY));
    let v = e.vision.as_ref().unwrap();
    assert_eq!((ids(&v.panel), ids(&v.summary)), (rows(VISION_PANEL), rows(VISION_SUMMARY)));
    for spec in e.models() {
        let row = DEFAULT_MODELS.iter().find(|m| m.id == spec.model).unwrap();
        assert_eq!(spec.provider, Provider::WorkersAi);
        assert_eq!(spec.max_tokens, Some(row.max_tokens as u64));
        assert_eq!(spec.extra_body.get("reasoning_effort").and_then(Value::as_str).unwrap_or(""), row.effort);
    }
    let d = e.description.as_deref().unwrap();
    assert!(d.contains("no API keys") && d.contains("(Workers Paid)"), "{d}");
    assert_eq!(price("@cf/openai/gpt-oss-120b"), Some((0.35, 0.75)));
    assert_eq!(price("@cf/nope"), None);
}

#[test]
fn the_default_ensemble_sends_the_table_settings() {
    let c = parse_config(&DEFAULT_CONFIG, Default::default()).unwrap();
    let summary = &c.ensembles[0].summary[0];
    let row = DEFAULT_MODELS.iter().find(|m| m.id == summary.model).unwrap();
    let v = body(Provider::WorkersAi, summary, &req(json!({"messages": user("hi")})), true, true);
    assert_eq!(v["max_tokens"], row.max_tokens);
    assert_eq!(v["reasoning_effort"], row.effort);
    assert_eq!(v["stream"], true);
}
