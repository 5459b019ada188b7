use super::*;

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
