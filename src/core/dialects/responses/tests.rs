use super::*;
use crate::core::dialects::{Encoder, ReplyIds};
use crate::core::ensemble::report::{N1Meta, PanelEnd, Progress, SummaryReport, SummaryStatus};
use crate::core::ensemble::Answer;
use crate::core::error::N1Error;
use crate::core::events::{Completion, Event, Finish};
use crate::core::request::{Content, Role, Tool, ToolChoice};
use crate::core::usage::Usage;
use serde_json::{json, Value};
use std::borrow::Cow;

fn req(v: Value) -> Result<crate::core::request::Request, N1Error> {
    decode(v.to_string().as_bytes())
}

fn ids() -> ReplyIds {
    ReplyIds { id: "resp_abc".into(), created: 7, model: "council".into() }
}

fn meta() -> N1Meta {
    N1Meta {
        ensemble: "council".into(),
        route: crate::core::config::Route::Ensemble,
        panel: vec![],
        panel_ok: 0,
        panel_total: 0,
        panel_end: PanelEnd::All,
        summary: SummaryReport { model: "s".into(), status: SummaryStatus::Ok, latency_ms: 1, usage: None, failed: vec![], cost_usd: None, cost_estimated: false },
        degraded: false,
        layers: None,
        ignored_tools: vec![],
        cost_usd: None,
        cost_estimated: false,
    }
}

/// `event:` types and `data:` objects of a stream.
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let mut p = crate::core::sse::Parser::new();
    let mut ev = Vec::new();
    p.push(out, &mut ev).unwrap();
    ev.into_iter().map(|e| (e.event.unwrap_or_default(), serde_json::from_str(&e.data).unwrap())).collect()
}

#[test]
fn input_items_become_the_conversation() {
    let r = req(json!({
        "model": "council",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "dev note"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "item_reference", "id": "msg_1"}
        ]
    }))
    .unwrap();
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::Developer, Role::User, Role::Assistant, Role::Tool, Role::Tool]);
    assert_eq!(r.messages[0].text(), "Be brief.");
    assert!(r.has_images());
    // Calls follow the assistant turn that made them.
    let calls: Vec<&str> = r.messages[3].tool_calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(calls, ["c1", "c2"]);
    assert_eq!(r.messages[3].text(), "calling");
    assert_eq!(r.messages[5].tool_call_id.as_deref(), Some("c2"));
    assert_eq!(r.messages[5].text(), "two");
    assert_eq!(r.model.as_deref(), Some("council"));
    assert!(r.store, "store defaults to true");
}

#[test]
fn a_string_input_is_the_users_turn_and_a_lone_call_makes_its_own_assistant_turn() {
    let r = req(json!({"input": "hi"})).unwrap();
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].role, Role::User);
    let r = req(json!({"input": [{"role": "user", "content": "x"}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]})).unwrap();
    assert_eq!(r.messages[1].role, Role::Assistant);
    assert_eq!(r.messages[1].content, Content::None);
}

#[test]
fn tools_are_flattened_hosted_ones_dropped_and_forcing_one_is_refused() {
    let r = req(json!({
        "input": "x",
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": true},
            {"type": "namespace", "name": "crm", "description": "d", "tools": [{"type": "function", "name": "find"}, {"type": "custom", "name": "note"}]},
            {"type": "custom", "name": "apply_patch", "description": "patch"},
            {"type": "web_search", "external_web_access": false},
            {"type": "file_search"}
        ],
        "tool_choice": {"type": "function", "name": "shell"}
    }))
    .unwrap();
    let names: Vec<&str> = r.params.tools.iter().map(|t| match t {
        Tool::Function { name, .. } => name.as_str(),
        Tool::Other(_) => "?",
    }).collect();
    assert_eq!(names, ["shell", "find", "note", "apply_patch"]);
    assert_eq!(r.ignored_tools, ["web_search", "file_search"]);
    assert_eq!(r.params.tool_choice, Some(ToolChoice::Function("shell".into())));
    let e = req(json!({"input": "x", "tool_choice": {"type": "web_search_preview"}})).unwrap_err();
    assert_eq!(e.code(), Some("unsupported_tool"));
    assert!(e.message().contains("web_search_preview"));
}

#[test]
fn parameters_map_to_chat_completions_names() {
    let r = req(json!({
        "input": "x", "max_output_tokens": 99, "temperature": 0.5, "top_p": 0.9, "user": "u", "parallel_tool_calls": false,
        "reasoning": {"effort": "high", "summary": "auto"}, "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}, "verbosity": "low"},
        "prompt_cache_key": "k", "store": false, "previous_response_id": "resp_prev", "metadata": {"a": "b"}, "include": ["x"], "truncation": "auto"
    }))
    .unwrap();
    let p = &r.params;
    assert_eq!((p.max_completion_tokens, p.max_tokens), (Some(99), None));
    assert_eq!(p.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(p.response_format, Some(json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}})));
    assert_eq!(p.extra.get("verbosity"), Some(&json!("low")));
    assert_eq!(p.extra.get("prompt_cache_key"), Some(&json!("k")));
    assert!(!p.extra.contains_key("metadata"), "metadata only shapes the response object");
    assert!(!r.store);
    assert_eq!(r.previous.as_deref(), Some("resp_prev"));
    assert_eq!(r.echo.get("metadata"), Some(&json!({"a": "b"})));
}

#[test]
fn malformed_values_are_400s_naming_the_field() {
    let param = |v: Value| match req(v).unwrap_err() {
        N1Error::InvalidRequest { param, .. } => param.unwrap_or_default(),
        e => panic!("{e:?}"),
    };
    assert_eq!(param(json!({"input": 3})), "input");
    assert_eq!(param(json!({})), "input");
    assert_eq!(param(json!({"input": [{"role": "robot", "content": "x"}]})), "input[0].role");
    assert_eq!(param(json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]})), "input[0].call_id");
    assert_eq!(param(json!({"input": "x", "top_p": 3})), "top_p");
    assert_eq!(param(json!({"input": "x", "tools": [{"type": "function"}]})), "tools[0].name");
    assert!(req(json!({"input": "x", "max_output_tokens": null, "temperature": null})).is_ok(), "nulls mean unset");
}

fn answer(c: Completion) -> Answer {
    Answer { completion: c, usage: Usage { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, cached_tokens: 0, ..Usage::default() }, meta: meta(), fallback: false }
}

#[test]
fn a_reply_is_a_response_object() {
    let r = req(json!({"input": "x", "instructions": "I", "tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]}, {"type": "custom", "name": "cu"}]})).unwrap();
    let mut c = Completion::text("hello");
    c.tool_calls.push(crate::core::request::ToolCall::function("call_1", "f", "{\"a\":1}"));
    c.tool_calls.push(crate::core::request::ToolCall::function("", "cu", "{\"input\":\"*** patch\"}"));
    let v: Value = serde_json::from_slice(&reply(&ids(), &r, &answer(c))).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["instructions"], "I");
    assert_eq!(v["output"][0], json!({"type": "message", "id": "msg_abc", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "hello", "annotations": []}]}));
    assert_eq!(v["output"][1], json!({"type": "function_call", "id": "fc_abc_0", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}", "status": "completed", "namespace": "ns"}));
    assert_eq!(v["output"][2], json!({"type": "custom_tool_call", "id": "fc_abc_1", "call_id": "call_abc_1", "name": "cu", "input": "*** patch", "status": "completed"}));
    assert_eq!(v["usage"], json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7}));
    assert_eq!(v["n1"]["ensemble"], "council");
    let mut cut = Completion::text("par");
    cut.finish = Finish::Length;
    let v: Value = serde_json::from_slice(&reply(&ids(), &r, &answer(cut))).unwrap();
    assert_eq!((v["status"].as_str(), &v["incomplete_details"]), (Some("incomplete"), &json!({"reason": "max_output_tokens"})));
}

#[test]
fn a_stream_is_the_documented_event_sequence() {
    let r = req(json!({"input": "x"})).unwrap();
    let mut s = ResponsesStream::new(&ids(), &r);
    let mut out = Vec::new();
    s.start(&mut out);
    s.progress(&Progress::SummaryStart { model: "s" }, &mut out);
    s.event(&Event::Reasoning(Default::default(), Cow::Borrowed("thinking")), &mut out);
    s.event(&Event::Text(Cow::Borrowed("Hel")), &mut out);
    s.event(&Event::Text(Cow::Borrowed("lo")), &mut out);
    s.event(&Event::ToolCall { index: 0, id: Some("call_9".into()), name: Some("f".into()), arguments: Cow::Borrowed("{\"a\"") }, &mut out);
    s.event(&Event::ToolCall { index: 0, id: None, name: None, arguments: Cow::Borrowed(":1}") }, &mut out);
    s.event(&Event::Finish(Finish::ToolCalls), &mut out);
    s.finish(&meta(), &Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, cached_tokens: 0, ..Usage::default() }, &mut out);
    let ev = events(&out);
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, [
        "response.created", "response.in_progress", "n1.progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]);
    for (i, (k, v)) in ev.iter().enumerate() {
        assert_eq!(v["type"], k.as_str());
        assert_eq!(v["sequence_number"], i as u64);
    }
    assert_eq!(ev[13].1["text"], "Hello");
    assert_eq!(ev[16].1["item"]["call_id"], "call_9");
    assert_eq!(ev[19].1["arguments"], "{\"a\":1}");
    let done = &ev[21].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"].as_array().unwrap().len(), 3);
    assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["total_tokens"], 3);
    assert_eq!(done["n1"]["summary"]["model"], "s");
}

#[test]
fn a_failure_after_the_headers_is_response_failed_with_what_came_before() {
    let r = req(json!({"input": "x"})).unwrap();
    let mut s = ResponsesStream::new(&ids(), &r);
    let mut out = Vec::new();
    s.start(&mut out);
    s.event(&Event::Text(Cow::Borrowed("part")), &mut out);
    s.fail(&N1Error::Stream { message: "cut".into(), code: "stream_error" }, &mut out);
    let ev = events(&out);
    let (kind, last) = ev.last().unwrap();
    assert_eq!(kind, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"], json!({"code": "stream_error", "message": "cut"}));
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "part");
    assert!(ev.iter().any(|(k, _)| k == "response.output_text.done"), "the open item is closed first");
}
