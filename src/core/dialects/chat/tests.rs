//! Chat Completions: requests checked and decoded (every 400 names its field),
//! answers encoded as `chat.completion` objects and `chat.completion.chunk`
//! streams with our identity.

use super::*;
use crate::core::dialects::{Dialect, Encoder, ReplyIds};
use crate::core::ensemble::report::{MemberReport, MemberStatus, N1Meta, PanelEnd, Progress, SummaryReport, SummaryStatus};
use crate::core::ensemble::Answer;
use crate::core::error::N1Error;
use crate::core::events::{Completion, Event, Finish, ReasoningField};
use crate::core::providers::Provider;
use crate::core::request::{Content, Limits, Part, Request, Role, Tool, ToolCall, ToolChoice};
use crate::core::sse;
use crate::core::usage::Usage;
use serde_json::{json, Value};
use std::borrow::Cow;

fn parse(v: Value) -> Result<Request, N1Error> {
    decode(v.to_string().as_bytes())
}

fn ok(v: Value) -> Request {
    parse(v.clone()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
}

fn err_of(v: Value) -> (Option<String>, String, Option<&'static str>) {
    match parse(v.clone()) {
        Err(N1Error::InvalidRequest { param, message, code }) => (param, message, code),
        other => panic!("{v}: expected a 400, got {other:?}"),
    }
}

fn param_of(v: Value) -> String {
    err_of(v).0.unwrap_or_default()
}

fn msgs() -> Value {
    json!([{"role": "user", "content": "x"}])
}

fn with(field: &str, value: Value) -> Value {
    let mut body = json!({"messages": msgs()});
    body[field] = value;
    body
}

// ---- requests: what is accepted

#[test]
fn accepts_a_minimal_request() {
    let r = ok(json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert!(r.model.is_none());
    assert!(!r.stream && !r.include_usage && !r.progress);
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].role, Role::User);
    assert_eq!(r.messages[0].content, Content::Text("hi".into()));
    assert_eq!(r.params, Default::default());
    assert!(r.ignored_tools.is_empty());
}

#[test]
fn decodes_every_known_field() {
    let r = ok(json!({
        "model": "council", "stream": true, "stream_options": {"include_usage": true}, "n": 1, "n1": {"progress": true},
        "messages": msgs(),
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "max_completion_tokens": 200, "stop": "END", "seed": -3,
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": "required", "parallel_tool_calls": false, "response_format": {"type": "json_object"},
        "reasoning_effort": "low", "user": "u-1",
        "presence_penalty": 0.1, "logit_bias": {"1": 1}, "x_vendor": [1]
    }));
    assert_eq!(r.model.as_deref(), Some("council"));
    assert!(r.stream && r.include_usage && r.progress);
    let p = &r.params;
    assert_eq!((p.temperature, p.top_p, p.max_tokens, p.max_completion_tokens, p.seed), (Some(0.5), Some(0.9), Some(100), Some(200), Some(-3)));
    assert_eq!(p.output_cap(), Some(200));
    assert_eq!(p.stop, ["END"]);
    assert_eq!(p.tools, vec![Tool::Function { name: "f".into(), description: Some("d".into()), parameters: Some(json!({"type": "object"})), strict: Some(true) }]);
    assert_eq!(p.tool_choice, Some(ToolChoice::Required));
    assert_eq!(p.parallel_tool_calls, Some(false));
    assert_eq!(p.response_format, Some(json!({"type": "json_object"})));
    assert_eq!((p.reasoning_effort.as_deref(), p.user.as_deref()), (Some("low"), Some("u-1")));
    // What N-1 does not know travels along; what it took does not.
    let extra: Vec<&str> = p.extra.keys().map(String::as_str).collect();
    assert_eq!(extra, ["logit_bias", "presence_penalty", "x_vendor"]);
}

#[test]
fn an_empty_model_is_the_default_ensemble() {
    assert!(ok(json!({"model": "", "messages": msgs()})).model.is_none());
}

#[test]
fn stop_as_a_list() {
    assert_eq!(ok(with("stop", json!(["a", "b"]))).params.stop, ["a", "b"]);
    assert_eq!(param_of(with("stop", json!(["a", 1]))), "stop");
}

#[test]
fn nulls_mean_unset() {
    let r = ok(json!({
        "model": null, "stream": null, "stream_options": null, "n": null, "temperature": null, "top_p": null,
        "max_tokens": null, "stop": null, "seed": null, "tools": null, "tool_choice": null, "user": null, "n1": null,
        "response_format": null, "x_vendor": null,
        "messages": [{"role": "user", "content": "x", "name": null, "tool_call_id": null, "tool_calls": null}]
    }));
    assert!(r.model.is_none() && !r.stream);
    assert_eq!(r.params, Default::default(), "no null is kept, not even an unknown field's");
    assert_eq!(r.messages[0].name, None);
    assert!(r.messages[0].tool_calls.is_empty());
    // Null content: only an assistant turn may have none.
    assert_eq!(ok(json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null}]})).messages[1].content, Content::None);
}

#[test]
fn every_role() {
    for (name, role) in Role::ALL {
        let r = ok(json!({"messages": [{"role": name, "content": "x"}]}));
        assert_eq!(r.messages[0].role, role, "{name}");
        assert_eq!(role.as_str(), name);
    }
    let (param, message, _) = err_of(json!({"messages": [{"role": "wizard", "content": "x"}]}));
    assert_eq!(param.as_deref(), Some("messages[0].role"));
    assert!(message.contains("`wizard` is not a valid role") && message.contains("system, developer, user, assistant, tool, function"), "{message}");
}

#[test]
fn content_parts() {
    let r = ok(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"},
        {"type": "input_text", "text": "b"},
        {"type": "image_url", "image_url": {"url": "https://x.test/i.png", "detail": "low"}},
        {"type": "image_url", "image_url": "https://x.test/j.png"},
        {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "high"},
        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}},
        {"type": "image_url", "image_url": {"nourl": 1}},
        {"type": "text"}
    ]}]}));
    let Content::Parts(parts) = &r.messages[0].content else { panic!() };
    assert_eq!(
        parts[..5],
        [
            Part::Text("a".into()),
            Part::Text("b".into()),
            Part::Image { url: "https://x.test/i.png".into(), detail: Some("low".into()) },
            Part::Image { url: "https://x.test/j.png".into(), detail: None },
            Part::Image { url: "data:image/png;base64,AA".into(), detail: Some("high".into()) },
        ]
    );
    assert_eq!(parts[5], Part::Other(json!({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}})));
    assert_eq!(parts[6], Part::Other(json!({"type": "image_url", "image_url": {"nourl": 1}})));
    assert_eq!(parts[7], Part::Other(json!({"type": "text"})));
    assert!(r.has_images());
    assert_eq!(r.messages[0].text(), "a\nb");
}

#[test]
fn tool_turns() {
    let r = ok(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": {"b": 2}}},
            {"id": "c3", "type": "function", "function": {"name": "h"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok", "cache_control": {"type": "ephemeral"}}
    ]}));
    assert_eq!(r.messages[1].tool_calls, vec![ToolCall::function("c1", "f", "{\"a\":1}"), ToolCall::function("c2", "g", "{\"b\":2}"), ToolCall::function("c3", "h", "{}")]);
    assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(r.messages[2].extra.get("cache_control"), Some(&json!({"type": "ephemeral"})), "unknown message fields are kept");
}

#[test]
fn tools_and_tool_choice() {
    let r = ok(with("tools", json!([{"type": "function", "function": {"name": "f"}}, {"type": "web_search", "x": 1}])));
    assert_eq!(r.params.tools, vec![Tool::Function { name: "f".into(), description: None, parameters: None, strict: None }, Tool::Other(json!({"type": "web_search", "x": 1}))]);
    for (choice, want) in [
        (json!("auto"), ToolChoice::Auto),
        (json!("none"), ToolChoice::None),
        (json!("required"), ToolChoice::Required),
        (json!({"type": "function", "function": {"name": "f"}}), ToolChoice::Function("f".into())),
        (json!({"type": "function", "name": "g"}), ToolChoice::Function("g".into())),
        (json!({"type": "allowed_tools", "tools": []}), ToolChoice::Other(json!({"type": "allowed_tools", "tools": []}))),
        (json!("sometimes"), ToolChoice::Other(json!("sometimes"))),
    ] {
        assert_eq!(ok(with("tool_choice", choice.clone())).params.tool_choice, Some(want), "{choice}");
    }
}

// ---- requests: every 400 names its field

#[test]
fn rejects_invalid_json_and_non_objects() {
    let e = decode(b"{nope").unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.message().contains("not valid JSON"), "{}", e.message());
    assert_eq!(e.code(), Some("invalid_json"));
    let e = decode(b"{\"messages\": \"\xff\"}").unwrap_err();
    assert!(e.message().contains("not valid JSON") && e.message().contains("UTF-8"), "{}", e.message());
    for body in [&b"[1]"[..], b"\"x\"", b"null", b"3", b""] {
        assert_eq!(decode(body).unwrap_err().status(), 400, "{}", String::from_utf8_lossy(body));
    }
    assert!(decode(b"[1]").unwrap_err().message().contains("must be a JSON object"));
}

#[test]
fn rejects_bad_messages() {
    assert_eq!(param_of(json!({})), "messages");
    assert_eq!(param_of(json!({"messages": null})), "messages");
    assert_eq!(param_of(json!({"messages": []})), "messages");
    assert_eq!(param_of(json!({"messages": "hi"})), "messages");
    assert_eq!(param_of(json!({"messages": [1]})), "messages[0]");
    assert_eq!(param_of(json!({"messages": [{"content": "x"}]})), "messages[0].role");
    assert_eq!(param_of(json!({"messages": [{"role": 1, "content": "x"}]})), "messages[0].role");
    assert_eq!(param_of(json!({"messages": [{"role": "wizard", "content": "x"}]})), "messages[0].role");
    assert_eq!(param_of(json!({"messages": [{"role": "user", "content": 5}]})), "messages[0].content");
    assert_eq!(param_of(json!({"messages": [{"role": "user"}]})), "messages[0].content");
    assert_eq!(param_of(json!({"messages": [{"role": "tool", "content": null}]})), "messages[0].content");
    assert_eq!(param_of(json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]})), "messages[0].content[0]");
    assert_eq!(param_of(json!({"messages": [{"role": "user", "content": ["x"]}]})), "messages[0].content[0]");
    assert_eq!(param_of(json!({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": 3}]}]})), "messages[1].content[1]");
    assert_eq!(param_of(json!({"messages": [{"role": "user", "content": "x", "name": 5}]})), "messages[0].name");
    assert_eq!(param_of(json!({"messages": [{"role": "tool", "content": "x", "tool_call_id": 5}]})), "messages[0].tool_call_id");
    assert_eq!(param_of(json!({"messages": [{"role": "assistant", "content": null, "tool_calls": {}}]})), "messages[0].tool_calls");
    assert_eq!(param_of(json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}]})), "messages[0].tool_calls[0]");
    assert_eq!(param_of(json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f"}}]}]})), "messages[0].tool_calls[0]");
    // The message says which role needs content.
    assert!(err_of(json!({"messages": [{"role": "user"}]})).1.contains("required for role `user`"));
    // An assistant tool-call turn has no content.
    ok(json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": []}]}));
    ok(json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant"}]}));
}

#[test]
fn rejects_wrong_types_of_known_fields() {
    for (field, bad) in [
        ("temperature", json!("hot")),
        ("temperature", json!(3)),
        ("temperature", json!(-0.1)),
        ("max_tokens", json!(1.5)),
        ("max_tokens", json!(0)),
        ("max_completion_tokens", json!(-1)),
        ("stream", json!("yes")),
        ("stop", json!([1])),
        ("stop", json!(5)),
        ("top_p", json!(2)),
        ("model", json!(7)),
        ("tools", json!({})),
        ("seed", json!("1")),
        ("n", json!(0)),
        ("n", json!("2")),
        ("stream_options", json!(true)),
        ("tool_choice", json!(1)),
        ("presence_penalty", json!(2.5)),
        ("frequency_penalty", json!(-3)),
        ("response_format", json!("json")),
        ("user", json!({})),
        ("logit_bias", json!([])),
        ("logprobs", json!(1)),
        ("top_logprobs", json!(-1)),
        ("parallel_tool_calls", json!("no")),
        ("metadata", json!("m")),
        ("store", json!(0)),
        ("reasoning_effort", json!(1)),
        ("n1", json!(true)),
    ] {
        let (param, message, _) = err_of(with(field, bad.clone()));
        assert_eq!(param.as_deref(), Some(field), "{field}: {bad}");
        assert!(message.contains(&format!("`{field}`")), "{field}: {message}");
    }
    // Ranges say what was sent.
    let (_, message, _) = err_of(with("temperature", json!(3)));
    assert!(message.contains("between") && message.ends_with("got 3."), "{message}");
    assert!(err_of(with("max_tokens", json!(0))).1.contains("at least 1, got 0"));
    // Nested: stream_options.include_usage, tools[i].function(.name).
    assert_eq!(param_of(with("stream_options", json!({"include_usage": "yes"}))), "stream_options.include_usage");
    assert_eq!(param_of(with("tools", json!([{"type": "function"}]))), "tools[0].function");
    assert_eq!(param_of(with("tools", json!([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"description": "x"}}]))), "tools[1].function.name");
    // The bounds themselves are fine.
    for (field, v) in [("temperature", json!(0)), ("temperature", json!(2)), ("top_p", json!(1)), ("max_tokens", json!(1)), ("presence_penalty", json!(-2)), ("top_logprobs", json!(0))] {
        ok(with(field, v));
    }
}

#[test]
fn n_above_one_is_refused() {
    let e = parse(with("n", json!(2))).unwrap_err();
    assert_eq!(e.code(), Some("unsupported_value"));
    let body: Value = serde_json::from_str(&e.openai_json()).unwrap();
    assert_eq!(body["error"]["code"], "unsupported_value");
    assert_eq!(body["error"]["param"], "n");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    ok(with("n", json!(1)));
}

#[test]
fn limits_on_messages_and_text() {
    let r = ok(json!({"messages": [{"role": "user", "content": "héllo"}, {"role": "user", "content": [{"type": "text", "text": "abc"}, {"type": "image_url", "image_url": {"url": "data:xxxxxxxxxxxx"}}]}]}));
    r.check_limits(&Limits { max_messages: 2, max_chars: 8 }).unwrap();
    let e = r.check_limits(&Limits { max_messages: 1, max_chars: 100 }).unwrap_err();
    assert_eq!(e.code(), Some("too_many_messages"));
    assert_eq!(e.status(), 400);
    let e = r.check_limits(&Limits { max_messages: 5, max_chars: 7 }).unwrap_err();
    assert_eq!(e.code(), Some("too_much_text"));
    let body: Value = serde_json::from_str(&e.openai_json()).unwrap();
    assert_eq!(body["error"]["param"], "messages");
    // The defaults are generous.
    r.check_limits(&Limits::default()).unwrap();
}

#[test]
fn the_dialect_routes_to_this_module() {
    let r = Dialect::Chat.decode(json!({"messages": msgs(), "stream": true}).to_string().as_bytes()).unwrap();
    assert!(r.stream);
    assert_eq!(Dialect::Chat.id_prefix(), "chatcmpl-");
    let (status, body) = Dialect::Chat.error(&N1Error::ModelNotFound("x".into()));
    assert_eq!(status, 404);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
}

// ---- the non-streaming reply

fn ids() -> ReplyIds {
    ReplyIds { id: "chatcmpl-ours".into(), created: 42, model: "council".into() }
}

fn meta() -> N1Meta {
    N1Meta {
        ensemble: "council".into(),
        panel: vec![MemberReport { model: "a".into(), status: MemberStatus::Ok, latency_ms: 5, attempts: 1, usage: None, error: None, truncated: false, cost_usd: None, cost_estimated: false }],
        panel_ok: 2,
        panel_total: 3,
        panel_end: PanelEnd::All,
        summary: SummaryReport { model: "s".into(), status: SummaryStatus::Ok, latency_ms: 1, usage: None, failed: vec![], cost_usd: None, cost_estimated: false },
        degraded: true,
        layers: None,
        ignored_tools: vec![],
        cost_usd: None,
        cost_estimated: false,
    }
}

fn answer(completion: Completion) -> Answer {
    Answer { completion, usage: Usage { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10, cached_tokens: 0 }, meta: meta(), fallback: false }
}

fn reply_json(a: &Answer) -> Value {
    serde_json::from_slice(&reply(&ids(), a)).unwrap()
}

#[test]
fn completion_object_has_openai_shape() {
    let c = Completion { text: "A".into(), finish: Finish::Length, ..Completion::default() };
    let v = reply_json(&answer(c));
    assert_eq!(v["id"], "chatcmpl-ours");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 42);
    assert_eq!(v["model"], "council");
    assert_eq!(v["choices"], json!([{"index": 0, "message": {"role": "assistant", "content": "A"}, "logprobs": null, "finish_reason": "length"}]));
    assert_eq!(v["usage"], json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}));
    assert_eq!(v["n1"]["summary"]["model"], "s");
    assert_eq!(v["n1"]["panel"][0], json!({"model": "a", "status": "ok", "latency_ms": 5, "attempts": 1, "cost_usd": null}));
    assert_eq!((v["n1"]["panel_ok"].as_u64(), v["n1"]["panel_total"].as_u64(), v["n1"]["degraded"].as_bool()), (Some(2), Some(3), Some(true)));
    assert_eq!(v["n1"]["panel_end"], "all");
    assert!(v["n1"].get("layers").is_none() && v["n1"].get("ignored_tools").is_none(), "{v}");
}

#[test]
fn a_reply_that_only_calls_tools_has_null_content() {
    let c = Completion { tool_calls: vec![ToolCall::function("call_1", "f", "{}")], finish: Finish::ToolCalls, ..Completion::default() };
    let v = reply_json(&answer(c));
    let m = &v["choices"][0]["message"];
    assert!(m["content"].is_null(), "{m}");
    assert_eq!(m["tool_calls"], json!([{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    // With text too, both.
    let c = Completion { text: "Checking.".into(), tool_calls: vec![ToolCall::function("c", "f", "{}")], finish: Finish::ToolCalls, ..Completion::default() };
    assert_eq!(reply_json(&answer(c))["choices"][0]["message"]["content"], "Checking.");
    // An empty answer without tool calls is an empty string, not null.
    assert_eq!(reply_json(&answer(Completion::default()))["choices"][0]["message"]["content"], "");
}

#[test]
fn reasoning_in_a_reply_keeps_its_field_name() {
    for (field, name) in [(ReasoningField::ReasoningContent, "reasoning_content"), (ReasoningField::Reasoning, "reasoning")] {
        let c = Completion { text: "4".into(), reasoning: Some((field, "because".into())), ..Completion::default() };
        let m = reply_json(&answer(c))["choices"][0]["message"].clone();
        assert_eq!(m[name], "because", "{m}");
        assert_eq!(m.as_object().unwrap().len(), 3, "role, content and {name} only: {m}");
    }
}

#[test]
fn ignored_tools_and_layers_are_reported() {
    let mut a = answer(Completion::text("x"));
    a.meta.ignored_tools = vec!["web_search".into()];
    a.meta.layers = Some(vec![vec![], vec![]]);
    let v = reply_json(&a);
    assert_eq!(v["n1"]["ignored_tools"], json!(["web_search"]));
    assert_eq!(v["n1"]["layers"], json!([[], []]));
}

// ---- the stream

/// Everything written, as the data of each event.
fn events(out: &[u8]) -> Vec<String> {
    let mut p = sse::Parser::new();
    let mut ev = Vec::new();
    p.push(out, &mut ev).unwrap();
    p.finish(&mut ev);
    ev.into_iter().map(|e| e.data).collect()
}

fn values(out: &[u8]) -> Vec<Value> {
    events(out).iter().map(|e| if e == "[DONE]" { Value::String(e.clone()) } else { serde_json::from_str(e).unwrap_or_else(|x| panic!("{x}: {e}")) }).collect()
}

/// A whole stream: start, the events, finish.
fn encode_all(include_usage: bool, evs: &[Event<'_>]) -> Vec<u8> {
    let mut s = ChatStream::new(&ids(), include_usage);
    let mut out = Vec::new();
    s.start(&mut out);
    for e in evs {
        s.event(e, &mut out);
    }
    s.finish(&meta(), &Usage { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0 }, &mut out);
    out
}

fn text(t: &str) -> Event<'_> {
    Event::Text(Cow::Borrowed(t))
}

#[test]
fn rewrites_ids_and_holds_finish_chunk_for_metadata() {
    // An upstream stream, read three bytes at a time, decoded and encoded.
    let src = "data: {\"id\":\"up\",\"model\":\"m\",\"created\":1,\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
               data: {\"id\":\"up\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
               data: {\"id\":\"up\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n\
               data: {\"id\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
               data: {\"id\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\ndata: [DONE]\n\n";
    let mut dec = Provider::Openai.decoder();
    let mut enc = ChatStream::new(&ids(), true);
    let mut out = Vec::new();
    let mut upstream_usage = None;
    enc.start(&mut out);
    for b in src.as_bytes().chunks(3) {
        dec.push(b, &mut |ev| {
            if let Event::Usage(u) = ev {
                upstream_usage = Some(u);
            }
            enc.event(&ev, &mut out)
        })
        .unwrap();
    }
    dec.end(&mut |ev| enc.event(&ev, &mut out)).unwrap();
    assert_eq!(upstream_usage.unwrap().total_tokens, 10);
    enc.finish(&meta(), &Usage { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0 }, &mut out);
    let ev = values(&out);
    assert_eq!(ev.len(), 6, "{ev:?}"); // role, 2 content, finish + n1, usage, [DONE]
    for c in &ev[..5] {
        assert_eq!((c["id"].as_str(), c["object"].as_str(), c["created"].as_u64(), c["model"].as_str()), (Some("chatcmpl-ours"), Some("chat.completion.chunk"), Some(42), Some("council")), "{c}");
        assert!(c.get("system_fingerprint").is_none());
    }
    assert!(!String::from_utf8_lossy(&out).contains("\"up\""));
    assert_eq!(ev[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(ev[1]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(ev[2]["choices"][0]["delta"]["content"], "lo");
    assert_eq!(ev[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(ev[3]["choices"][0]["delta"], json!({}));
    assert_eq!(ev[3]["n1"]["panel_ok"], 2);
    // The usage given at the end (summed over every call), not the upstream's.
    assert_eq!(ev[4]["usage"]["total_tokens"], 2);
    assert_eq!(ev[4]["choices"], json!([]));
    assert_eq!(ev[5], "[DONE]");
}

#[test]
fn chunks_have_openai_shape() {
    let out = encode_all(false, &[text("x")]);
    let ev = values(&out);
    assert_eq!(
        ev[0],
        json!({"id": "chatcmpl-ours", "object": "chat.completion.chunk", "created": 42, "model": "council",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]})
    );
    assert_eq!(
        ev[1],
        json!({"id": "chatcmpl-ours", "object": "chat.completion.chunk", "created": 42, "model": "council",
            "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": null, "finish_reason": null}]})
    );
    // Every event is `data: …` and a blank line.
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("data: {") && s.ends_with("data: [DONE]\n\n"), "{s}");
    assert_eq!(s.matches("\n\n").count(), 4, "{s}");
}

#[test]
fn role_chunk_first_and_done_last() {
    let ev = values(&encode_all(false, &[text("a"), text("b")]));
    assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(ev[1..].iter().all(|v| v["choices"][0]["delta"].get("role").is_none()));
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert_eq!(ev.iter().filter(|v| *v == "[DONE]").count(), 1);
}

#[test]
fn the_finish_chunk_carries_the_finish_reason_and_n1() {
    let ev = values(&encode_all(false, &[text("a"), Event::Finish(Finish::Length)]));
    assert_eq!(ev.len(), 4, "{ev:?}"); // role, text, finish, [DONE]: the finish waits for n1
    assert_eq!(ev[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(ev[2]["n1"], serde_json::to_value(meta()).unwrap());
    // No finish event: stop.
    let ev = values(&encode_all(false, &[text("a")]));
    assert_eq!(ev[2]["choices"][0]["finish_reason"], "stop");
    // Content before the finish is never held back.
    let ev = values(&encode_all(false, &[Event::Finish(Finish::ToolCalls), text("late")]));
    assert_eq!(ev[1]["choices"][0]["delta"]["content"], "late");
    assert_eq!(ev[2]["choices"][0]["finish_reason"], "tool_calls");
    for (f, want) in [(Finish::ContentFilter, "content_filter"), (Finish::Other("eos".into()), "eos"), (Finish::Stop, "stop")] {
        assert_eq!(values(&encode_all(false, &[Event::Finish(f)]))[1]["choices"][0]["finish_reason"], want);
    }
}

#[test]
fn usage_chunk_only_with_include_usage() {
    let with = values(&encode_all(true, &[text("a"), Event::Usage(Usage { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18, cached_tokens: 0 })]));
    assert_eq!(with.len(), 5, "{with:?}");
    assert_eq!(with[3]["usage"], json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}), "the usage finish() was given");
    assert_eq!(with[3]["choices"], json!([]));
    assert_eq!(with[3]["id"], "chatcmpl-ours");
    let without = values(&encode_all(false, &[text("a"), Event::Usage(Usage::default())]));
    assert_eq!(without.len(), 4);
    assert!(without.iter().all(|v| v.get("usage").is_none()), "{without:?}");
}

#[test]
fn error_event_then_done() {
    let mut s = ChatStream::new(&ids(), true);
    let mut out = Vec::new();
    s.start(&mut out);
    s.event(&text("partial"), &mut out);
    s.fail(&N1Error::Stream { message: "The summary model's stream broke.".into(), code: "stream_error" }, &mut out);
    let ev = values(&out);
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(ev[2], json!({"error": {"message": "The summary model's stream broke.", "type": "upstream_error", "param": null, "code": "stream_error"}}));
    assert_eq!(ev[3], "[DONE]");
    assert!(!String::from_utf8_lossy(&out).contains("\"n1\""), "no finish chunk after a failure");
}

#[test]
fn tool_call_deltas() {
    let ev = values(&encode_all(
        false,
        &[
            Event::ToolCall { index: 0, id: Some("call_1".into()), name: Some("get_weather".into()), arguments: "".into() },
            Event::ToolCall { index: 0, id: None, name: None, arguments: "{\"city\":".into() },
            Event::ToolCall { index: 1, id: Some("call_2".into()), name: Some("f".into()), arguments: "{}".into() },
            Event::ToolCall { index: 0, id: None, name: None, arguments: "\"Oslo\"}".into() },
            Event::Finish(Finish::ToolCalls),
        ],
    ));
    let deltas: Vec<&Value> = ev[1..5].iter().map(|v| &v["choices"][0]["delta"]).collect();
    assert_eq!(*deltas[0], json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}));
    assert_eq!(*deltas[1], json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}));
    assert_eq!(*deltas[2], json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}));
    assert_eq!(*deltas[3], json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}));
    assert_eq!(ev[5]["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn reasoning_deltas_under_their_field_name() {
    let ev = values(&encode_all(
        false,
        &[Event::Reasoning(ReasoningField::ReasoningContent, "r1".into()), Event::Reasoning(ReasoningField::Reasoning, "r2".into()), text("4")],
    ));
    assert_eq!(ev[1]["choices"][0]["delta"], json!({"reasoning_content": "r1"}));
    assert_eq!(ev[2]["choices"][0]["delta"], json!({"reasoning": "r2"}));
    assert_eq!(ev[3]["choices"][0]["delta"], json!({"content": "4"}));
}

#[test]
fn text_and_identity_are_escaped() {
    let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} é 世界 🎉 </script> data: [DONE]\n\n";
    let ids = ReplyIds { id: "chatcmpl-\"x\"".into(), created: 1, model: "en\"s\\emble\n".into() };
    let mut s = ChatStream::new(&ids, true);
    let mut out = Vec::new();
    s.start(&mut out);
    s.event(&text(tricky), &mut out);
    s.event(&Event::ToolCall { index: 0, id: Some("i\"d".into()), name: Some("n\\m".into()), arguments: "{\"a\":\"\\n\"}".into() }, &mut out);
    s.finish(&meta(), &Usage::default(), &mut out);
    let ev = values(&out);
    assert_eq!(ev.len(), 6, "the text cannot end an event early: {ev:?}");
    assert_eq!(ev[1]["choices"][0]["delta"]["content"], tricky);
    assert_eq!(ev[2]["choices"][0]["delta"]["tool_calls"][0], json!({"index": 0, "id": "i\"d", "type": "function", "function": {"name": "n\\m", "arguments": "{\"a\":\"\\n\"}"}}));
    for v in &ev[..5] {
        assert_eq!((v["id"].as_str(), v["model"].as_str()), (Some("chatcmpl-\"x\""), Some("en\"s\\emble\n")));
    }
}

#[test]
fn usage_events_write_nothing() {
    let mut s = ChatStream::new(&ids(), true);
    let mut out = Vec::new();
    s.event(&Event::Usage(Usage::default()), &mut out);
    s.event(&Event::Finish(Finish::Stop), &mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn progress_chunks_and_keep_alives() {
    let mut s = ChatStream::new(&ids(), false);
    let mut out = Vec::new();
    s.progress(&Progress::SummaryStart { model: "s" }, &mut out);
    let ev = values(&out);
    assert_eq!(ev[0]["choices"][0]["delta"], json!({"content": ""}));
    assert_eq!(ev[0]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(ev[0]["n1_progress"], json!({"type": "summary_start", "model": "s"}));
    assert_eq!(ev[0]["id"], "chatcmpl-ours");
    let mut out = Vec::new();
    s.keep_alive(&mut out);
    assert_eq!(out, b": keep-alive\n\n");
    assert!(events(&out).is_empty(), "a comment, not an event");
}

#[test]
fn the_dialect_encoder_follows_include_usage() {
    for include_usage in [false, true] {
        let r = ok(json!({"messages": msgs(), "stream": true, "stream_options": {"include_usage": include_usage}}));
        let mut enc = Dialect::Chat.encoder(&ids(), &r);
        let mut out = Vec::new();
        enc.finish(&meta(), &Usage::default(), &mut out);
        assert_eq!(String::from_utf8_lossy(&out).contains("\"usage\":{"), include_usage);
    }
}

#[test]
fn a_whole_answer_streams_in_order() {
    // A completion replayed as events (a best-panel-answer fallback) encodes like a stream.
    let c = Completion {
        text: "done".into(),
        reasoning: Some((ReasoningField::Reasoning, "think".into())),
        tool_calls: vec![ToolCall::function("c1", "f", "{}")],
        finish: Finish::ToolCalls,
        usage: None,
    };
    let ev = values(&encode_all(false, &c.events()));
    let deltas: Vec<Value> = ev[1..4].iter().map(|v| v["choices"][0]["delta"].clone()).collect();
    assert_eq!(deltas, [json!({"reasoning": "think"}), json!({"content": "done"}), json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})]);
    assert_eq!(ev[4]["choices"][0]["finish_reason"], "tool_calls");
}
