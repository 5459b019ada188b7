use super::*;

#[test]
fn tools_only_with_tools() {
    let r = req(json!({
        "messages": user("x"),
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {}}, "strict": true}},
            {"type": "web_search", "search_context_size": "low"}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false,
        "functions": [{"name": "legacy"}], "function_call": "auto"
    }));
    let m = spec(Provider::Openai);
    let without = body(Provider::Openai, &m, &r, false, false);
    for k in ["tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"] {
        assert!(without.get(k).is_none(), "{k}: {without}");
    }
    let with = body(Provider::Openai, &m, &r, false, true);
    assert_eq!(
        with["tools"],
        json!([
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {}}, "strict": true}},
            {"type": "web_search", "search_context_size": "low"}
        ])
    );
    assert_eq!(with["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    assert_eq!(with["parallel_tool_calls"], false);
    assert_eq!(with["functions"], json!([{"name": "legacy"}]));
    assert_eq!(with["function_call"], "auto");
    for (choice, want) in [(json!("none"), json!("none")), (json!("required"), json!("required")), (json!({"type": "allowed_tools", "x": 1}), json!({"type": "allowed_tools", "x": 1}))] {
        let r = req(json!({"messages": user("x"), "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}));
        assert_eq!(body(Provider::Openai, &m, &r, false, true)["tool_choice"], want);
    }
}

#[test]
fn openai_messages_keep_their_fields_and_parts() {
    let messages = json!([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
        ], "cache_control": {"type": "ephemeral"}},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    ]);
    let r = req(json!({"messages": messages}));
    let v = body(Provider::Openai, &spec(Provider::Openai), &r, false, true);
    assert_eq!(v["messages"], messages);
}

#[test]
fn a_system_message_of_ours_goes_first() {
    let r = req(json!({"messages": [{"role": "system", "content": "client's"}, {"role": "user", "content": "x"}]}));
    let (_, v) = body_text(Provider::Openai, &spec(Provider::Openai), &r, Some("ours"), false, false);
    let roles: Vec<(&str, &str)> = v["messages"].as_array().unwrap().iter().map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
    assert_eq!(roles, [("system", "ours"), ("system", "client's"), ("user", "x")]);
}

#[test]
fn parses_a_completion() {
    let c = Provider::Openai
        .parse_reply(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#)
        .unwrap();
    assert_eq!(c.text, "hi");
    assert_eq!(c.finish, Finish::Stop);
    assert_eq!(c.usage.unwrap().total_tokens, 3);
}

#[test]
fn malformed_completions_are_errors() {
    let p = Provider::Openai;
    assert!(p.parse_reply("{\"choices\": [").unwrap_err().contains("malformed"));
    assert!(p.parse_reply("{\"choices\": []}").unwrap_err().contains("no choices"));
    assert!(p.parse_reply("{}").unwrap_err().contains("no choices"));
    assert!(p.parse_reply("{\"choices\": [{}]}").unwrap_err().contains("without a message"));
    assert!(p.parse_reply("[]").is_err());
    assert!(p.parse_reply("").is_err());
}

#[test]
fn odd_but_valid_completions() {
    let p = Provider::Openai;
    // Content parts, joined.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}}]}"#).unwrap();
    assert_eq!(c.text, "a\nb");
    // A refusal stands for the content; no finish_reason means stop.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":null,"refusal":"I can't"}}]}"#).unwrap();
    assert_eq!((c.text.as_str(), &c.finish), ("I can't", &Finish::Stop));
    // Reasoning under either name, kept under its name.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":"x","reasoning":"because"}}]}"#).unwrap();
    assert_eq!(c.reasoning, Some((ReasoningField::Reasoning, "because".into())));
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":"x","reasoning_content":"rc","reasoning":"r"}}]}"#).unwrap();
    assert_eq!(c.reasoning, Some((ReasoningField::ReasoningContent, "rc".into())));
    // Tool call arguments as an object, or missing; legacy finish reason.
    let c = p
        .parse_reply(r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":{"x":1}}},{"id":"b","function":{"name":"g"}},{"function":{}}]},"finish_reason":"function_call"}]}"#)
        .unwrap();
    assert_eq!(c.tool_calls, vec![ToolCall::function("a", "f", "{\"x\":1}"), ToolCall::function("b", "g", "{}")]);
    assert_eq!(c.finish, Finish::ToolCalls);
    assert_eq!(c.text, "");
    // Unknown finish reasons are kept; odd usage is none.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":"x"},"finish_reason":"eos"}],"usage":{"prompt_tokens":"many"}}"#).unwrap();
    assert_eq!(c.finish, Finish::Other("eos".into()));
    assert_eq!(c.usage, None);
}

#[test]
fn finish_without_done_is_complete() {
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.text(), "a");
}

#[test]
fn done_without_finish_is_complete() {
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n");
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.text(), "a");
    assert!(d.finishes().is_empty(), "no finish of its own: the encoder says stop");
}

#[test]
fn nothing_after_done_counts() {
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: ###\n\n");
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.text(), "a");
}

/// Each format's last event ends the stream for its reader; a finish reason
/// alone does not (OpenAI's usage chunk, Anthropic's `message_stop` follow it).
#[test]
fn the_last_event_ends_the_stream_not_the_finish_reason() {
    let cases = [
        (Provider::Openai, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", "data: [DONE]\n\n"),
        (
            Provider::Anthropic,
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ),
        (Provider::WorkersAi, "data: {\"response\":\"a\"}\n\n", "data: [DONE]\n\n"),
        (Provider::WorkersAi, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", "data: [DONE]\n\n"),
    ];
    for (p, before, last) in cases {
        let mut d = p.decoder();
        let mut emit = |_: crate::core::events::Event<'_>| {};
        d.push(before.as_bytes(), &mut emit).unwrap();
        assert!(!d.ended(), "{p:?}: not ended by {before:?}");
        // Split inside the last event: ended only once it is whole.
        let (a, b) = last.split_at(last.len() - 1);
        d.push(a.as_bytes(), &mut emit).unwrap();
        assert!(!d.ended(), "{p:?}: ended by half an event");
        d.push(b.as_bytes(), &mut emit).unwrap();
        assert!(d.ended(), "{p:?}: ended by {last:?}");
        assert_eq!(d.end(&mut emit), Ok(()));
    }
}

#[test]
fn a_null_error_member_is_no_error() {
    let src = "data: {\"error\":null,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n\
               data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"error\":null}\n\ndata: [DONE]\n\n";
    for p in [Provider::Openai, Provider::WorkersAi] {
        let d = decode(p, src);
        assert_eq!(d.result, Ok(()), "{p:?}");
        assert_eq!(d.text(), "a", "{p:?}");
    }
    // Any other value is an error, even late in a chunk with content (which is not relayed).
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"error\":\"late\"}\n\n");
    assert_eq!(d.result, Err(StreamError::Upstream("{\"error\":\"late\"}".into())));
    assert!(d.events.is_empty());
}

#[test]
fn tool_call_deltas_pass_through() {
    let d = decode(
        Provider::Openai,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    );
    assert_eq!(d.result, Ok(()));
    assert_eq!(
        d.events[..3],
        [
            Event::ToolCall { index: 0, id: Some("call_1".into()), name: Some("f".into()), arguments: "".into() },
            Event::ToolCall { index: 1, id: Some("call_2".into()), name: Some("g".into()), arguments: "{}".into() },
            Event::ToolCall { index: 0, id: None, name: None, arguments: "{\"a\":1}".into() },
        ]
    );
    let c = d.completion();
    assert_eq!(c.tool_calls, vec![ToolCall::function("call_1", "f", "{\"a\":1}"), ToolCall::function("call_2", "g", "{}")]);
    assert_eq!(c.finish, Finish::ToolCalls);
}

#[test]
fn reasoning_keeps_its_field_name() {
    let d = decode(
        Provider::Openai,
        "data: {\"choices\":[{\"delta\":{\"reasoning\":\"r1\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"reasoning_content\":\"r2\",\"content\":\"\"}}]}\n\ndata: [DONE]\n\n",
    );
    assert_eq!(d.events, [Event::Reasoning(ReasoningField::Reasoning, "r1".into()), Event::Reasoning(ReasoningField::ReasoningContent, "r2".into())]);
}

/// The common chunk is read typed: its text is borrowed from the event, not
/// copied out of a JSON tree (escapes need a copy); the rest is the same.
#[test]
fn plain_text_is_borrowed_from_the_event() {
    let mut d = Provider::Openai.decoder();
    let mut seen = Vec::new();
    let wire = "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"plain\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
                data: {\"choices\":[{\"delta\":{\"content\":\"line\\n\"}}]}\n\n";
    d.push(wire.as_bytes(), &mut |e| seen.push(matches!(e, Event::Text(Cow::Borrowed(_))))).unwrap();
    assert_eq!(seen, [true, false]);
}

#[test]
fn each_corpus_event_decodes_as_specified() {
    for (data, want) in corpus() {
        let mut d = Provider::Openai.decoder();
        let mut events = Vec::new();
        let got = d.push(format!("data: {data}\n\n").as_bytes(), &mut |e| events.push(owned(e)));
        match (&want, got) {
            (Ok(w), Ok(())) => assert_eq!(&events, w, "{data}"),
            (Err(k), Err(e)) => {
                assert_eq!(*k, kind(&e), "{data}: {e:?}");
                assert!(events.is_empty(), "{data}: nothing of an event in error is relayed");
            }
            (w, g) => panic!("{data}: want {w:?}, got {g:?} with {events:?}"),
        }
    }
}

/// Every sequence of up to 3 corpus events, and long random ones (the relay's
/// old differential test, against the table): the events are each event's in
/// order, up to the first error; nothing counts after `[DONE]`; the stream is
/// complete once a finish reason or `[DONE]` came.
#[test]
fn corpus_sequences_decode_event_by_event() {
    let corpus = corpus();
    let all: Vec<usize> = (0..corpus.len()).collect();
    let mut seqs: Vec<Vec<Option<usize>>> = Vec::new(); // None: [DONE]
    let with_done: Vec<Option<usize>> = all.iter().map(|&i| Some(i)).chain([None]).collect();
    for &a in &with_done {
        seqs.push(vec![a]);
        for &b in &with_done {
            seqs.push(vec![a, b]);
            for &c in with_done.iter().step_by(5) {
                seqs.push(vec![a, b, c]);
            }
        }
    }
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..2000 {
        let n = 1 + (x % 12) as usize;
        let mut s = Vec::new();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % (corpus.len() as u64 + 1)) as usize;
            s.push((i < corpus.len()).then_some(i));
        }
        seqs.push(s);
    }
    for seq in &seqs {
        let src: String = seq.iter().map(|i| format!("data: {}\n\n", i.map_or("[DONE]", |i| corpus[i].0))).collect();
        let mut want_events = Vec::new();
        let mut want_err = None;
        let mut complete = false;
        for i in seq {
            let Some(i) = i else {
                complete = true;
                break;
            };
            match &corpus[*i].1 {
                Ok(evs) => {
                    complete |= evs.iter().any(|e| matches!(e, Event::Finish(_)));
                    want_events.extend(evs.iter().cloned());
                }
                Err(k) => {
                    want_err = Some(*k);
                    break;
                }
            }
        }
        for reads in [vec![src.as_bytes()], src.as_bytes().chunks(7).collect::<Vec<_>>()] {
            let d = decode_reads(Provider::Openai, &reads);
            assert_eq!(d.events, want_events, "{seq:?}");
            match (want_err, &d.result) {
                (Some(k), Err(e)) => assert_eq!(k, kind(e), "{seq:?}"),
                (None, Ok(())) => assert!(complete, "{seq:?}"),
                (None, Err(StreamError::Truncated)) => assert!(!complete, "{seq:?}"),
                (w, g) => panic!("{seq:?}: want {w:?}, got {g:?}"),
            }
        }
    }
}
