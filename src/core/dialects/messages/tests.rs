use std::borrow::Cow;

use serde_json::{json, Value};

use super::*;
use crate::core::config::Route;
use crate::core::dialects::{Encoder, ReplyIds};
use crate::core::ensemble::report::{N1Meta, PanelEnd, Progress, SummaryReport, SummaryStatus};
use crate::core::ensemble::Answer;
use crate::core::error::{Failure, FailureKind, N1Error};
use crate::core::events::{Completion, Event, Finish, ReasoningField};
use crate::core::request::{Content, Part, PromptCache, Request, Role, Tool, ToolCall, ToolChoice};
use crate::core::usage::Usage;

fn dec(v: Value) -> Request {
    decode(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The 400's message and param.
fn err(v: Value) -> (String, String) {
    match decode(v.to_string().as_bytes()) {
        Err(N1Error::InvalidRequest { message, param, .. }) => (message, param.unwrap_or_default()),
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn base(messages: Value) -> Value {
    json!({"model": "council", "max_tokens": 100, "messages": messages})
}

#[test]
fn a_plain_request() {
    let r = dec(json!({
        "model": "council", "max_tokens": 256, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "stop_sequences": ["END"], "stream": true, "metadata": {"user_id": "u-1"},
        "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}],
    }));
    assert_eq!(r.model.as_deref(), Some("council"));
    assert!(r.stream);
    assert_eq!(r.messages.len(), 2);
    assert_eq!((r.messages[0].role, r.messages[0].text().as_ref()), (Role::System, "Be brief."));
    assert_eq!((r.messages[1].role, r.messages[1].content.clone()), (Role::User, Content::Text("Hi".into())));
    let p = &r.params;
    assert_eq!((p.max_completion_tokens, p.max_tokens), (Some(256), None));
    assert_eq!((p.temperature, p.top_p, p.top_k), (Some(0.5), Some(0.9), Some(40)));
    assert_eq!(p.stop, vec!["END".to_owned()]);
    assert_eq!(p.user.as_deref(), Some("u-1"));
    // Nothing of Anthropic's request is forwarded as an unknown field.
    assert!(p.extra.is_empty());
    assert!(!r.include_usage);
}

#[test]
fn max_tokens_is_required_except_for_count_tokens() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let (message, param) = err(body.clone());
    assert_eq!(param, "max_tokens");
    assert!(message.contains("required"), "{message}");
    assert!(decode_count(body.to_string().as_bytes()).is_ok());
}

#[test]
fn system_blocks_and_system_messages_inside_messages() {
    let r = dec(json!({
        "max_tokens": 10,
        "system": [{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Two."}],
        "messages": [{"role": "system", "content": [{"type": "text", "text": "Inner."}]}, {"role": "user", "content": "q"}],
    }));
    assert_eq!(r.model, None);
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::System, Role::User]);
    assert_eq!(r.messages[0].text(), "One.\n\nTwo.");
    assert_eq!(r.messages[1].text(), "Inner.");
}

#[test]
fn cache_marks_anywhere_ask_for_prompt_caching_the_top_level_or_last_marks_lifetime() {
    let mark = json!({"type": "ephemeral"});
    let long = json!({"type": "ephemeral", "ttl": "1h"});
    let plain = base(json!([{"role": "user", "content": "q"}]));
    assert_eq!(dec(plain.clone()).params.prompt_cache, None);
    let with = |k: &str, v: Value| {
        let mut b = plain.clone();
        b[k] = v;
        dec(b).params.prompt_cache
    };
    assert_eq!(with("cache_control", long.clone()), Some(PromptCache::OneHour));
    assert_eq!(with("system", json!([{"type": "text", "text": "S", "cache_control": mark}])), Some(PromptCache::FiveMinutes));
    assert_eq!(with("tools", json!([{"name": "t", "input_schema": {"type": "object"}, "cache_control": long}])), Some(PromptCache::OneHour));
    // The mark nearest the end of the prompt: a message block's, after the system's.
    let mut b = plain.clone();
    b["system"] = json!([{"type": "text", "text": "S", "cache_control": long}]);
    b["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "q", "cache_control": mark}]}]);
    assert_eq!(dec(b).params.prompt_cache, Some(PromptCache::FiveMinutes));
}

#[test]
fn user_blocks_text_images_documents_and_dropped_kinds() {
    let r = dec(base(json!([{"role": "user", "content": [
        {"type": "text", "text": "Look:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "doc text"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "redacted_thinking", "data": "x"},
    ]}])));
    let Content::Parts(parts) = &r.messages[0].content else { panic!("{:?}", r.messages[0].content) };
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[0], Part::Text("Look:".into()));
    assert_eq!(parts[1], Part::Image { url: "data:image/png;base64,AAAA".into(), detail: None });
    assert_eq!(parts[2], Part::Image { url: "https://x.test/a.png".into(), detail: None });
    assert_eq!(parts[3], Part::Text("Notes\n\ndoc text".into()));
    assert!(parts[4].text().unwrap().contains("cannot pass on"));
    assert!(r.has_images());
}

#[test]
fn text_only_blocks_become_one_string() {
    let r = dec(base(json!([{"role": "user", "content": [
        {"type": "text", "text": "<reminder>"}, {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}
    ]}])));
    assert_eq!(r.messages[0].content, Content::Text("<reminder>\n\nhello".into()));
}

#[test]
fn tool_use_and_tool_result_round_trip() {
    let r = dec(base(json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "call the tool", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18°C"}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
            {"type": "text", "text": "Thanks"},
        ]},
    ])));
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Tool, Role::User]);
    let a = &r.messages[1];
    assert_eq!(a.content, Content::Text("Checking.".into()));
    assert_eq!(a.tool_calls, vec![ToolCall::function("toolu_1", "get_weather", r#"{"city":"Paris"}"#)]);
    assert_eq!((r.messages[2].tool_call_id.as_deref(), r.messages[2].text().as_ref()), (Some("toolu_1"), "18°C"));
    assert_eq!((r.messages[3].tool_call_id.as_deref(), r.messages[3].text().as_ref()), (Some("toolu_2"), "Error: boom"));
    assert_eq!(r.messages[4].text(), "Thanks");
}

#[test]
fn an_assistant_turn_of_only_tool_calls_has_no_content_and_thinking_only_turns_vanish() {
    let r = dec(base(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
    ])));
    assert_eq!(r.messages.len(), 3);
    assert_eq!(r.messages[1].content, Content::None);
    assert_eq!((r.messages[2].role, r.messages[2].text().as_ref()), (Role::Tool, ""));
}

#[test]
fn images_in_a_tool_result_move_to_the_user_turn() {
    let r = dec(base(json!([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "screenshot:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
        ]},
    ]}])));
    assert_eq!(r.messages[0].role, Role::Tool);
    assert_eq!(r.messages[0].text(), "screenshot:");
    let Content::Parts(parts) = &r.messages[1].content else { panic!() };
    assert!(parts[0].text().unwrap().contains("t1"));
    assert_eq!(parts[1], Part::Image { url: "data:image/jpeg;base64,/9j/".into(), detail: None });
}

#[test]
fn custom_tools_become_functions_and_server_tools_are_ignored() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let r = dec(json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [
        {"name": "get_weather", "description": "Weather", "input_schema": schema, "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "other", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "browser_toolset_20260801"},
    ], "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}));
    assert_eq!(
        r.params.tools,
        vec![
            Tool::Function { name: "get_weather".into(), description: Some("Weather".into()), parameters: Some(schema), strict: None },
            Tool::Function { name: "other".into(), description: None, parameters: Some(json!({"type": "object"})), strict: None },
        ]
    );
    assert_eq!(r.ignored_tools, ["web_search", "bash", "str_replace_based_edit_tool", "computer", "code_execution", "browser_toolset_20260801"]);
    assert_eq!(r.params.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(r.params.parallel_tool_calls, Some(false));
}

#[test]
fn tool_choice_forms() {
    let with = |choice: Value| {
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}]);
        decode(json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}).to_string().as_bytes())
    };
    let choice = |c: Value| with(c).unwrap().params.tool_choice;
    assert_eq!(choice(json!({"type": "any"})), Some(ToolChoice::Required));
    assert_eq!(choice(json!({"type": "none"})), Some(ToolChoice::None));
    assert_eq!(choice(json!({"type": "tool", "name": "f"})), Some(ToolChoice::Function("f".into())));
    assert_eq!(with(json!({"type": "tool", "name": "f"})).unwrap().params.parallel_tool_calls, None);
    // Forcing a server tool cannot be honoured: a 400 naming it.
    match with(json!({"type": "tool", "name": "web_search"})) {
        Err(N1Error::InvalidRequest { message, code, .. }) => {
            assert!(message.contains("`web_search`"), "{message}");
            assert_eq!(code, Some("server_tool_not_supported"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(with(json!({"type": "tool", "name": "nope"})), Err(N1Error::InvalidRequest { param: Some(p), .. }) if p == "tool_choice.name"));
    assert!(matches!(with(json!({"type": "sometimes"})), Err(N1Error::InvalidRequest { param: Some(p), .. }) if p == "tool_choice.type"));
}

#[test]
fn a_choice_among_server_tools_only() {
    let req = |choice: &str| {
        let body = json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": choice}});
        decode(body.to_string().as_bytes())
    };
    // `any` would force the server tool.
    assert!(matches!(req("any"), Err(N1Error::InvalidRequest { code: Some("server_tool_not_supported"), .. })));
    // `auto` with nothing N-1 can offer: no choice goes upstream.
    let r = req("auto").unwrap();
    assert_eq!((r.params.tool_choice, r.params.parallel_tool_calls), (None, None));
    assert!(r.params.tools.is_empty());
}

#[test]
fn accepted_and_ignored_fields() {
    let r = dec(json!({
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "service_tier": "auto", "container": "c-1",
        "mcp_servers": [], "context_management": {}, "output_config": {"effort": "high"}, "inference_geo": "us",
        "speed": "fast", "cache_control": {"type": "ephemeral"}, "some_future_field": {"x": 1}, "temperature": null,
        "n1": {"progress": true, "direct": true},
    }));
    assert!(r.progress && r.direct);
    assert_eq!(r.params.reasoning_effort, None);
    assert_eq!(r.params.temperature, None);
    assert!(r.params.extra.is_empty());
}

#[test]
fn malformed_values_are_400s_naming_the_field() {
    let cases = [
        (json!("just a string"), ""),
        (json!({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}), "max_tokens"),
        (json!({"max_tokens": 5}), "messages"),
        (json!({"max_tokens": 5, "messages": []}), "messages"),
        (json!({"max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]}), "temperature"),
        (json!({"max_tokens": 5, "top_k": -1, "messages": [{"role": "user", "content": "x"}]}), "top_k"),
        (json!({"max_tokens": 5, "stop_sequences": "END", "messages": [{"role": "user", "content": "x"}]}), "stop_sequences"),
        (json!({"max_tokens": 5, "service_tier": 3, "messages": [{"role": "user", "content": "x"}]}), "service_tier"),
        (json!({"max_tokens": 5, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}), "system"),
        (json!({"max_tokens": 5, "thinking": {"type": "enabled"}, "messages": [{"role": "user", "content": "x"}]}), "thinking.budget_tokens"),
        (json!({"max_tokens": 5, "metadata": {"user_id": 7}, "messages": [{"role": "user", "content": "x"}]}), "metadata.user_id"),
        (json!({"max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}), "messages[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user"}]}), "messages[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "system", "content": [{"type": "image"}]}]}), "messages[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}), "messages[0].content[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": ["x", {"type": "text"}]}]}), "messages[0].content[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text"}]}]}), "messages[0].content[1]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}), "messages[0].content[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}), "messages[0].content[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]}]}), "messages[0].content[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]}]}), "messages[0].content[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]}), "tools[0]"),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": ["f"]}), "tools[0]"),
    ];
    for (body, param) in cases {
        let (message, got) = match decode(body.to_string().as_bytes()) {
            Err(N1Error::InvalidRequest { message, param, .. }) => (message, param.unwrap_or_default()),
            other => panic!("{body}: expected a 400, got {other:?}"),
        };
        assert_eq!(got, param, "{body}: {message}");
        if !param.is_empty() {
            assert!(message.starts_with(&format!("`{param}` ")), "{message}");
        }
    }
    assert!(matches!(decode(b"{not json"), Err(N1Error::InvalidRequest { code: Some("invalid_json"), .. })));
}

#[test]
fn count_tokens_estimates_characters_over_four_and_images() {
    let r = decode_count(
        json!({"model": "m", "system": "abcd", "tools": [{"name": "ab", "input_schema": {"type": "object"}}], "messages": [
            {"role": "user", "content": [{"type": "text", "text": "12345678"}, {"type": "image", "source": {"type": "url", "url": "https://x"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "ab", "input": {}}]},
        ]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    // system 4 + text 8 + call "ab" + "{}" 4 + tool "ab" 2 + schema {"type":"object"} 17 = 35 chars → 9 tokens, + 1 image.
    assert_eq!(count_tokens(&r), 9 + 1_600);
}

// ---- encoding

fn ids() -> ReplyIds {
    ReplyIds { id: "msg_abc".into(), created: 1, model: "council".into() }
}

fn meta() -> N1Meta {
    N1Meta {
        ensemble: "council".into(),
        route: Route::Ensemble,
        panel: vec![],
        panel_ok: 2,
        panel_total: 2,
        panel_end: PanelEnd::All,
        summary: SummaryReport { model: "s".into(), status: SummaryStatus::Ok, latency_ms: 1, usage: None, failed: vec![], cost_usd: None, cost_estimated: false },
        degraded: false,
        layers: None,
        ignored_tools: vec!["web_search".into()],
        cost_usd: None,
        cost_estimated: false,
    }
}

fn usage() -> Usage {
    Usage { prompt_tokens: 30, completion_tokens: 15, total_tokens: 45, cached_tokens: 0, ..Usage::default() }
}

fn answer(completion: Completion) -> Answer {
    Answer { completion, usage: usage(), meta: meta(), fallback: false }
}

fn body(bytes: Vec<u8>) -> Value {
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn reply_is_a_message_with_summed_usage_and_n1() {
    let v = body(reply(&ids(), &answer(Completion::text("Hello"))));
    assert_eq!(
        v,
        json!({
            "id": "msg_abc", "type": "message", "role": "assistant", "model": "council",
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 15},
            "n1": serde_json::to_value(meta()).unwrap(),
        })
    );
    // Cache reads and writes have their own fields, as Anthropic reports them.
    let cached = Answer { usage: Usage { cached_tokens: 12, cache_write_tokens: 8, ..usage() }, ..answer(Completion::text("Hello")) };
    let u = &body(reply(&ids(), &cached))["usage"];
    assert_eq!(u, &json!({"input_tokens": 10, "cache_creation_input_tokens": 8, "cache_read_input_tokens": 12, "output_tokens": 15}));
}

#[test]
fn reply_with_thinking_and_tool_calls() {
    let c = Completion {
        text: String::new(),
        reasoning: Some((ReasoningField::ReasoningContent, "think".into())),
        tool_calls: vec![ToolCall::function("call_1", "get_weather", r#"{"city":"Paris"}"#), ToolCall::function("", "f", "not json")],
        finish: Finish::Stop,
        usage: None,
    };
    let v = body(reply(&ids(), &answer(c)));
    assert_eq!(
        v["content"],
        json!([
            {"type": "thinking", "thinking": "think", "signature": ""},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_abc_1", "name": "f", "input": {}},
        ])
    );
    // Tool calls under a plain stop are still a tool_use stop.
    assert_eq!(v["stop_reason"], "tool_use");
}

#[test]
fn stop_reasons() {
    for (finish, want) in [(Finish::Length, "max_tokens"), (Finish::ToolCalls, "tool_use"), (Finish::ContentFilter, "refusal"), (Finish::Other("eos".into()), "end_turn")] {
        let c = Completion { finish, ..Completion::text("x") };
        assert_eq!(body(reply(&ids(), &answer(c)))["stop_reason"], want);
    }
}

/// The events of a stream: (event name, data).
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| {
            let (ev, data) = b.split_once('\n').unwrap();
            let name = ev.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "every event's data names its type");
            (name, data)
        })
        .collect()
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn stream_event_sequence_with_blocks_per_kind() {
    let mut s = MessagesStream::new(&ids());
    let mut out = Vec::new();
    s.start(&mut out);
    s.keep_alive(&mut out);
    let t = |x: &'static str| Cow::Borrowed(x);
    for ev in [
        Event::Reasoning(ReasoningField::Reasoning, t("hmm")),
        Event::Text(t("Hel")),
        Event::Text(t("")),
        Event::Text(t("lo")),
        Event::ToolCall { index: 0, id: Some(t("call_1")), name: Some(t("get_weather")), arguments: t("") },
        Event::ToolCall { index: 0, id: None, name: None, arguments: t("{\"city\":") },
        Event::ToolCall { index: 1, id: None, name: Some(t("f")), arguments: t("{}") },
        Event::ToolCall { index: 0, id: None, name: None, arguments: t("\"Paris\"}") },
        Event::Usage(Usage { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0, ..Usage::default() }),
        Event::Finish(Finish::ToolCalls),
    ] {
        s.event(&ev, &mut out);
    }
    s.finish(&meta(), &usage(), &mut out);
    let evs = events(&out);
    assert_eq!(
        names(&evs),
        [
            "message_start", "ping",
            "content_block_start", "content_block_delta", "content_block_stop", // thinking
            "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", // text
            "content_block_start", "content_block_delta", "content_block_stop", // tool 0
            "content_block_start", "content_block_delta", // tool 1
            "content_block_delta", // tool 0's late piece, to its own block
            "content_block_stop", "message_delta", "message_stop",
        ]
    );
    let m = &evs[0].1["message"];
    assert_eq!((m["id"].as_str(), m["model"].as_str(), m["role"].as_str()), (Some("msg_abc"), Some("council"), Some("assistant")));
    assert_eq!(m["content"], json!([]));
    assert_eq!(evs[2].1["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
    assert_eq!(evs[3].1["delta"], json!({"type": "thinking_delta", "thinking": "hmm"}));
    assert_eq!(evs[5].1, json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}));
    assert_eq!(evs[7].1["delta"], json!({"type": "text_delta", "text": "lo"}));
    assert_eq!(evs[9].1["content_block"], json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}));
    assert_eq!(evs[10].1["delta"], json!({"type": "input_json_delta", "partial_json": "{\"city\":"}));
    // A call whose model gave no id gets one: a tool result must name it.
    assert_eq!(evs[12].1["content_block"]["id"], "toolu_abc_1");
    assert_eq!((evs[14].1["index"].as_u64(), evs[15].1["index"].as_u64()), (Some(2), Some(3)));
    let delta = &evs[16].1;
    assert_eq!(delta["delta"], json!({"stop_reason": "tool_use", "stop_sequence": null}));
    assert_eq!(delta["usage"], json!({"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 15}));
    assert_eq!(delta["n1"]["ignored_tools"], json!(["web_search"]));
}

#[test]
fn an_empty_answer_still_has_a_text_block() {
    let mut s = MessagesStream::new(&ids());
    let mut out = Vec::new();
    s.start(&mut out);
    s.finish(&meta(), &usage(), &mut out);
    let evs = events(&out);
    assert_eq!(names(&evs), ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(evs[3].1["delta"]["stop_reason"], "end_turn");
}

#[test]
fn progress_and_failure_events() {
    let mut s = MessagesStream::new(&ids());
    let mut out = Vec::new();
    s.progress(&Progress::SummaryStart { model: "s" }, &mut out);
    s.event(&Event::Text(Cow::Borrowed("partial")), &mut out);
    let failure = Failure::new("p1", Some(503), FailureKind::Error, "down");
    s.fail(&N1Error::PanelFailed { failures: vec![failure], answered: 0, needed: 1 }, &mut out);
    let evs = events(&out);
    assert_eq!(names(&evs), ["n1_progress", "content_block_start", "content_block_delta", "error"]);
    assert_eq!(evs[0].1["n1_progress"], json!({"type": "summary_start", "model": "s"}));
    let e = &evs[3].1["error"];
    assert_eq!(e["type"], "api_error");
    assert_eq!(e["details"]["error_code"], "panel_failed");
    assert!(e["message"].as_str().unwrap().starts_with("panel_failed: Too few panel models answered"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("p1 (HTTP 503): down"));
}

#[test]
fn anthropic_error_shapes() {
    let cases: Vec<(N1Error, u16, &str)> = vec![
        (N1Error::invalid("`max_tokens` is required.", Some("max_tokens")), 400, "invalid_request_error"),
        (N1Error::MissingKey, 401, "authentication_error"),
        (N1Error::InvalidKey, 401, "authentication_error"),
        (N1Error::Forbidden("no".into()), 403, "permission_error"),
        (N1Error::ModelNotFound("x".into()), 404, "not_found_error"),
        (N1Error::NotFound("/v1/messages/batches".into()), 404, "not_found_error"),
        (N1Error::PayloadTooLarge(10), 413, "request_too_large"),
        (N1Error::RateLimited(60), 429, "rate_limit_error"),
        (N1Error::OverBudget("over the daily budget".into()), 429, "rate_limit_error"),
        (N1Error::Internal("bug".into()), 500, "api_error"),
        (N1Error::SummaryFailed(vec![]), 502, "api_error"),
        (N1Error::RequestTimeout(1000), 504, "api_error"),
    ];
    for (e, status, kind) in cases {
        assert_eq!(e.status(), status);
        let v: Value = serde_json::from_str(&e.anthropic_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind, "{e:?}");
        assert_eq!(v["error"]["message"].as_str().map(|m| m.contains(&e.message())), Some(true));
        assert_eq!(v["error"]["details"]["error_code"].as_str(), e.code());
    }
    let v: Value = serde_json::from_str(&N1Error::RequestTimeout(1000).anthropic_json()).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().starts_with("request_timeout: "));
    // A 400 without a code has no details.
    let v: Value = serde_json::from_str(&N1Error::invalid("bad", None).anthropic_json()).unwrap();
    assert_eq!(v, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}));
}
