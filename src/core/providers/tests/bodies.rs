use super::*;

#[test]
fn anthropic_system_messages_become_the_system_field() {
    let r = req(json!({"messages": [
        {"role": "system", "content": "A"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "B1"}, {"type": "text", "text": "B2"}]}
    ]}));
    let v = anthropic_body(&r, Some("SYNTH"), false, false);
    assert_eq!(v["system"], "SYNTH\n\nA\n\nB1\nB2");
    assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(v["model"], "claude-x");
    let v = anthropic_body(&req(json!({"messages": user("hi")})), None, false, false);
    assert!(v.get("system").is_none(), "{v}");
    assert!(v.get("stream").is_none(), "stream only when streaming: {v}");
    assert_eq!(anthropic_body(&req(json!({"messages": user("hi")})), None, true, false)["stream"], true);
}

#[test]
fn anthropic_prompt_caching_when_the_client_asked_and_the_prompt_begins_as_the_clients() {
    let mut r = req(json!({"messages": user("hi")}));
    assert!(anthropic_body(&r, None, false, false).get("cache_control").is_none(), "not asked for");
    r.params.prompt_cache = Some(PromptCache::FiveMinutes);
    assert_eq!(anthropic_body(&r, None, false, false)["cache_control"], json!({"type": "ephemeral"}));
    r.params.prompt_cache = Some(PromptCache::OneHour);
    assert_eq!(anthropic_body(&r, None, true, true)["cache_control"], json!({"type": "ephemeral", "ttl": "1h"}));
    // A prompt that begins with N-1's own system prompt (the synthesis) is not cached.
    assert!(anthropic_body(&r, Some("SYNTH"), false, false).get("cache_control").is_none());
    // OpenAI-compatible upstreams never get it.
    assert!(body_text(Provider::Openai, &spec(Provider::Openai), &r, None, false, false).1.get("cache_control").is_none());
}

#[test]
fn anthropic_tool_use_and_tool_result() {
    let r = req(json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "broken", "arguments": "{not json"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "12 C"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "err"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "f"}}]}
    ]}));
    let v = anthropic_body(&r, None, false, true);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "c2", "name": "broken", "input": {}}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "12 C"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c2", "content": "err"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c3", "name": "f", "input": {}}]}
        ])
    );
}

#[test]
fn anthropic_images() {
    let r = req(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%20x%3D%221%22%2F%3E"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;name=a.jpg;BASE64,/9j/4AA"}},
        {"type": "image_url", "image_url": {"url": "data:,hi"}},
        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
    ]}]}));
    let v = anthropic_body(&r, None, false, false);
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type": "text", "text": "compare"},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2ZyB4PSIxIi8+"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AA"}},
            {"type": "image", "source": {"type": "base64", "media_type": "text/plain", "data": "aGk="}}
        ])
    );
}

#[test]
fn anthropic_temperature_is_capped_at_1() {
    for (configured, client, want) in [(None, None, None), (None, Some(0.4), Some(0.4)), (None, Some(1.5), Some(1.0)), (Some(1.8), None, Some(1.0)), (Some(0.3), Some(2.0), Some(1.0)), (Some(0.3), None, Some(0.3))] {
        let m = spec_of(json!({"provider": "anthropic", "model": "c", "temperature": configured}));
        let mut b = json!({"messages": user("x")});
        if let Some(t) = client {
            b["temperature"] = json!(t);
        }
        let v = body(Provider::Anthropic, &m, &req(b), false, false);
        assert_eq!(v.get("temperature").and_then(Value::as_f64), want, "{configured:?} {client:?}");
    }
}

#[test]
fn anthropic_max_tokens_default_configured_and_client() {
    let plain = spec(Provider::Anthropic);
    let configured = spec_of(json!({"provider": "anthropic", "model": "c", "max_tokens": 1000}));
    let x = req(json!({"messages": user("x")}));
    assert_eq!(body(Provider::Anthropic, &plain, &x, false, false)["max_tokens"], 4096);
    assert_eq!(body(Provider::Anthropic, &configured, &x, false, false)["max_tokens"], 1000);
    let client = req(json!({"messages": user("x"), "max_tokens": 50}));
    assert_eq!(body(Provider::Anthropic, &configured, &client, false, false)["max_tokens"], 50);
    let client = req(json!({"messages": user("x"), "max_completion_tokens": 60}));
    assert_eq!(body(Provider::Anthropic, &plain, &client, false, false)["max_tokens"], 60);
}

#[test]
fn anthropic_extra_body_wins() {
    let m = spec_of(json!({"provider": "anthropic", "model": "c", "max_tokens": 1000,
        "extra_body": {"max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": 2048}, "temperature": 1, "top_k": 5}}));
    let r = req(json!({"messages": user("x"), "temperature": 0.2, "max_tokens": 10}));
    let (text, v) = body_text(Provider::Anthropic, &m, &r, None, true, false);
    assert_eq!(v["max_tokens"], 64000);
    assert_eq!(v["thinking"]["budget_tokens"], 2048);
    assert_eq!(v["temperature"], 1);
    assert_eq!(v["top_k"], 5);
    assert_eq!(v["stream"], true);
    assert_eq!(text.matches("\"max_tokens\"").count(), 1, "{text}");
}

#[test]
fn anthropic_parameters_tools_and_choices() {
    let r = req(json!({
        "messages": user("x"), "top_p": 0.9, "stop": ["END", "STOP"], "user": "u-1", "seed": 4, "x_vendor": 1, "response_format": {"type": "json_object"},
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "g"}},
            {"type": "web_search"}
        ],
        "tool_choice": "required"
    }));
    let v = anthropic_body(&r, None, false, true);
    assert_eq!(v["top_p"], 0.9);
    assert_eq!(v["stop_sequences"], json!(["END", "STOP"]));
    assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
    for k in ["seed", "x_vendor", "response_format", "stop", "user"] {
        assert!(v.get(k).is_none(), "{k} is not Anthropic's: {v}");
    }
    assert_eq!(
        v["tools"],
        json!([
            {"name": "f", "description": "does f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
            {"name": "g", "description": "", "input_schema": {"type": "object"}}
        ])
    );
    assert_eq!(v["tool_choice"], json!({"type": "any"}));
    let without = anthropic_body(&r, None, false, false);
    assert!(without.get("tools").is_none() && without.get("tool_choice").is_none(), "{without}");
    for (choice, want) in [
        (json!("auto"), Some(json!({"type": "auto"}))),
        (json!("none"), Some(json!({"type": "none"}))),
        (json!({"type": "function", "function": {"name": "f"}}), Some(json!({"type": "tool", "name": "f"}))),
        (json!({"type": "allowed_tools"}), None),
    ] {
        let r = req(json!({"messages": user("x"), "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}));
        assert_eq!(anthropic_body(&r, None, false, true).get("tool_choice").cloned(), want);
    }
    // No stop, no user, no tools: none of their fields.
    let v = anthropic_body(&req(json!({"messages": user("x")})), None, false, true);
    for k in ["stop_sequences", "metadata", "tools", "tool_choice", "top_p", "temperature"] {
        assert!(v.get(k).is_none(), "{k}: {v}");
    }
}

#[test]
fn anthropic_replies() {
    let p = Provider::Anthropic;
    let c = p
        .parse_reply(r#"{"content":[{"type":"text","text":"a"},{"type":"server_tool_use","id":"x"},{"type":"text","text":"b"}],"stop_reason":"stop_sequence","usage":{"input_tokens":4,"output_tokens":2}}"#)
        .unwrap();
    assert_eq!((c.text.as_str(), &c.finish, c.usage), ("ab", &Finish::Stop, Some(usage(4, 2))));
    let c = p.parse_reply(r#"{"content":[{"type":"tool_use","id":"t","name":"f"}],"stop_reason":"refusal"}"#).unwrap();
    assert_eq!(c.tool_calls, vec![ToolCall::function("t", "f", "{}")]);
    assert_eq!((c.finish, c.usage), (Finish::ContentFilter, None));
    assert!(p.parse_reply("{\"content\": ").unwrap_err().contains("malformed"));
    assert!(p.parse_reply("{\"type\": \"error\"}").is_err());
}

#[test]
fn anthropic_stop_reasons() {
    for (stop, want) in [("end_turn", Finish::Stop), ("stop_sequence", Finish::Stop), ("max_tokens", Finish::Length), ("tool_use", Finish::ToolCalls), ("refusal", Finish::ContentFilter), ("pause_turn", Finish::Stop)] {
        let src = format!("data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\"}},\"usage\":{{\"output_tokens\":1}}}}\n\n");
        assert_eq!(decode(Provider::Anthropic, &src).finishes(), [want], "{stop}");
    }
}

#[test]
fn anthropic_message_stop_alone_completes_and_ping_is_nothing() {
    let d = decode(Provider::Anthropic, "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    assert_eq!(d.result, Ok(()));
    assert!(d.events.is_empty());
}

#[test]
fn anthropic_tool_blocks_map_to_tool_call_indices() {
    let ev = |v: Value| format!("data: {v}\n\n");
    let src = [
        ev(json!({"type": "message_start", "message": {"usage": {"input_tokens": 9}}})),
        ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Two calls."}})),
        // Not a tool block: its JSON deltas are no tool call's.
        ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"stray\":1}"}})),
        ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}})),
        ev(json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t2", "name": "g", "input": {}}})),
        ev(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"b\":"}})),
        ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}})),
        ev(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "2}"}})),
        ev(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}})),
    ]
    .concat();
    let d = decode(Provider::Anthropic, &src);
    assert_eq!(d.result, Ok(()));
    let c = d.completion();
    assert_eq!(c.text, "Two calls.");
    assert_eq!(c.tool_calls, vec![ToolCall::function("t1", "f", "{\"a\":1}"), ToolCall::function("t2", "g", "{\"b\":2}")]);
    assert_eq!((c.finish, c.usage), (Finish::ToolCalls, Some(usage(9, 30))));
}

#[test]
fn anthropic_usage_in_message_delta_wins_over_message_start() {
    let src = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9}}}\n\n\
               data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}\n\n";
    assert_eq!(decode(Provider::Anthropic, src).completion().usage, Some(usage(12, 3)));
}

#[test]
fn cached_prompt_tokens_are_read_from_openai_and_anthropic() {
    let cached = |p, c, k| Usage { cached_tokens: k, ..usage(p, c) };
    let c = Provider::Openai
        .parse_reply(r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":100,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":64}}}"#)
        .unwrap();
    assert_eq!(c.usage, Some(cached(100, 2, 64)));
    // Anthropic's input_tokens leaves out cache reads and writes: the prompt counts them all.
    let c = Provider::Anthropic
        .parse_reply(r#"{"content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":80,"cache_creation_input_tokens":5,"output_tokens":2}}"#)
        .unwrap();
    assert_eq!(c.usage, Some(Usage { cache_write_tokens: 5, ..cached(95, 2, 80) }));
    // A stream's message_start carries the input counts, cache writes (split by lifetime) too.
    let src = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":80,\"cache_creation_input_tokens\":30,\"cache_creation\":{\"ephemeral_5m_input_tokens\":20,\"ephemeral_1h_input_tokens\":10},\"output_tokens\":1}}}\n\n\
               data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n";
    let written = Usage { cache_write_tokens: 30, cache_write_1h_tokens: 10, ..cached(120, 3, 80) };
    assert_eq!(decode(Provider::Anthropic, src).completion().usage, Some(written));
    let src = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":40}}}\n\ndata: [DONE]\n\n";
    assert_eq!(decode(Provider::Openai, src).completion().usage, Some(cached(50, 1, 40)));
}
