use super::*;

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
    enc.finish(&meta(), &Usage { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0, ..Usage::default() }, &mut out);
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
    let with = values(&encode_all(true, &[text("a"), Event::Usage(Usage { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18, cached_tokens: 0, ..Usage::default() })]));
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
