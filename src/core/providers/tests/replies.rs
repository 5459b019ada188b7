use super::*;

#[test]
fn every_provider_decodes_every_scenario_from_its_stream() {
    let n = each_case(|p, wire, s, body, end| {
        let d = decode(p, &(body + &end));
        assert_eq!(d.result, Ok(()), "{p:?}/{wire:?}: {}", s.name);
        assert_eq!(d.completion(), s.expected(), "{p:?}/{wire:?}: {}", s.name);
        // One finish, after the answer; usage once.
        assert_eq!(d.finishes(), std::slice::from_ref(&s.finish), "{p:?}/{wire:?}: {}", s.name);
        let finish_at = d.events.iter().position(|e| matches!(e, Event::Finish(_))).unwrap();
        assert!(d.events[finish_at..].iter().all(|e| !e.is_content()), "{p:?}/{wire:?}: {}: {:?}", s.name, d.events);
        assert_eq!(d.events.iter().filter(|e| matches!(e, Event::Usage(_))).count(), 1, "{p:?}/{wire:?}: {}", s.name);
        // A tool call's id and name come with its first piece only.
        let calls: Vec<&Event> = d.events.iter().filter(|e| matches!(e, Event::ToolCall { .. })).collect();
        if let Some(t) = &s.tool {
            assert!(matches!(calls[0], Event::ToolCall { index: 0, id: Some(id), name: Some(n), .. } if id == t.id && n == t.name), "{calls:?}");
            assert!(calls[1..].iter().all(|e| matches!(e, Event::ToolCall { index: 0, id: None, name: None, .. })), "{calls:?}");
            assert!(calls.len() >= t.args.len(), "{p:?}/{wire:?}: arguments stream as they come: {calls:?}");
        } else {
            assert!(calls.is_empty());
        }
        // Text streams as it comes, not at the end.
        let texts = d.events.iter().filter(|e| matches!(e, Event::Text(_))).count();
        assert_eq!(texts, s.text.len(), "{p:?}/{wire:?}: {}: {:?}", s.name, d.events);
    });
    assert_eq!(n, 5 + 5 + 1 + 5);
}

#[test]
fn every_provider_parses_every_scenario_from_its_reply() {
    let mut n = 0;
    for (p, wire) in PAIRS {
        for s in scenarios() {
            let Some(reply) = reply_of(wire, &s) else { continue };
            n += 1;
            assert_eq!(p.parse_reply(&reply), Ok(s.expected()), "{p:?}/{wire:?}: {}", s.name);
        }
    }
    assert_eq!(n, 5 + 5 + 3 + 5);
}

#[test]
fn reads_split_at_every_byte_decode_the_same() {
    each_case(|p, wire, s, body, end| {
        for src in [body.clone() + &end, body.clone()] {
            let whole = decode(p, &src);
            let bytes = src.as_bytes();
            for cut in 0..=bytes.len() {
                let split = decode_reads(p, &[&bytes[..cut], &bytes[cut..]]);
                assert_eq!(split, whole, "{p:?}/{wire:?}: {}: cut at {cut}", s.name);
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(decode_reads(p, &singles), whole, "{p:?}/{wire:?}: {}: one byte per read", s.name);
            let threes: Vec<&[u8]> = bytes.chunks(3).collect();
            assert_eq!(decode_reads(p, &threes), whole, "{p:?}/{wire:?}: {}: three bytes per read", s.name);
        }
    });
}

#[test]
fn line_endings_and_field_spacing_do_not_matter() {
    each_case(|p, wire, s, body, end| {
        let src = body + &end;
        let want = decode(p, &src);
        // SSE joins the `data:` lines of one event with a new line, which JSON reads as space.
        let multi_line = src.replace("data: {", "data: {\ndata: ");
        for (what, variant) in [
            ("CRLF", src.replace('\n', "\r\n")),
            ("CR", src.replace('\n', "\r")),
            ("no space after the colon", src.replace("data: ", "data:")),
            ("comments", src.replace("\n\n", "\n\n: keep-alive\n\n")),
            ("multi-line data", multi_line.clone()),
            ("multi-line data, CRLF", multi_line.replace('\n', "\r\n")),
            ("multi-line data, CR", multi_line.replace('\n', "\r")),
        ] {
            assert_eq!(decode(p, &variant), want, "{p:?}/{wire:?}: {}: {what}", s.name);
            // Split after every CR (a CRLF split between its CR and its LF).
            let bytes = variant.as_bytes();
            for (i, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'\r') {
                assert_eq!(decode_reads(p, &[&bytes[..=i], &bytes[i + 1..]]), want, "{p:?}/{wire:?}: {}: {what}, split after the CR at {i}", s.name);
            }
        }
    });
}

#[test]
fn truncated_streams_are_errors_after_relaying_what_came() {
    each_case(|p, wire, s, body, _| {
        let d = decode(p, &body);
        assert_eq!(d.result, Err(StreamError::Truncated), "{p:?}/{wire:?}: {}", s.name);
        let c = d.completion();
        assert_eq!(c.text, s.text.concat(), "{p:?}/{wire:?}: {}", s.name);
        assert_eq!(c.tool_calls, s.expected().tool_calls, "{p:?}/{wire:?}: {}", s.name);
        assert!(d.finishes().is_empty(), "{p:?}/{wire:?}: {}: no finish of its own", s.name);
    });
}

#[test]
fn upstream_error_events_are_upstream_errors_and_scrubbable() {
    let secrets = Secrets::new(["sk-live-SECRET-9".to_owned()]);
    for (p, wire) in PAIRS {
        let s = &scenarios()[0];
        let (body, _) = stream_of(wire, s).unwrap_or_else(|| stream_of(Wire::OpenAi, s).unwrap());
        // The first text piece, then the error.
        let first_text = body.find(s.text[1]).map(|i| body[..i].rfind("data:").unwrap()).unwrap();
        let src = format!("{}{}", &body[..first_text], error_event(wire));
        let d = decode(p, &src);
        let Err(StreamError::Upstream(raw)) = &d.result else { panic!("{p:?}/{wire:?}: {:?}", d.result) };
        assert_eq!(secrets.summarize_error(raw), "Overloaded: key [redacted]", "{p:?}/{wire:?}: {raw}");
        assert_eq!(d.text(), s.text[0], "{p:?}/{wire:?}: what came before the error was relayed");
        let msg = StreamError::Upstream(raw.clone()).message("summary model", Some(&secrets.summarize_error(raw)));
        assert!(msg.contains("Overloaded: key [redacted]") && !msg.contains("SECRET"), "{msg}");
    }
}

#[test]
fn malformed_events_are_errors_in_every_format() {
    for p in [Provider::Openai, Provider::Anthropic, Provider::WorkersAi] {
        for bad in ["data: ###\n\n", "data: {\"unterminated\n\n", "data: {\"a\":1} trailing\n\n"] {
            let d = decode(p, bad);
            assert!(matches!(d.result, Err(StreamError::Malformed(_))), "{p:?}: {bad:?}: {:?}", d.result);
            assert!(d.events.is_empty());
        }
        // A line too long to be SSE.
        let mut dec = p.decoder();
        let big = vec![b'a'; crate::core::sse::MAX_LINE + 1];
        assert_eq!(dec.push(&big, &mut |_| {}), Err(StreamError::Malformed("a line without end")), "{p:?}");
    }
}

#[test]
fn empty_and_comment_only_streams_are_truncated() {
    for p in [Provider::Openai, Provider::Anthropic, Provider::WorkersAi] {
        assert_eq!(decode(p, "").result, Err(StreamError::Truncated), "{p:?}");
        assert_eq!(decode(p, ": ping\n\n: ping\n\n").result, Err(StreamError::Truncated), "{p:?}");
        assert!(decode(p, ": ping\n\n").events.is_empty());
    }
}

#[test]
fn an_unterminated_last_event_still_counts() {
    // The end marker without its blank line: the stream ended right after it.
    for (p, wire) in PAIRS {
        let s = &scenarios()[0];
        let Some((body, end)) = stream_of(wire, s) else { continue };
        let src = body + end.trim_end();
        let d = decode(p, &src);
        assert_eq!(d.result, Ok(()), "{p:?}/{wire:?}");
        assert_eq!(d.completion().text, s.text.concat());
    }
}

#[test]
fn stream_error_messages_say_what_happened() {
    assert!(StreamError::Truncated.message("summary model", None).contains("ended before the answer was complete"));
    assert!(StreamError::Malformed("an event that is not JSON").message("summary model", None).contains("malformed: an event that is not JSON"));
    assert!(StreamError::Upstream("{}".into()).message("summary model", Some("boom")).ends_with("mid-stream: boom"));
}

#[test]
fn endpoints_per_provider() {
    assert_eq!(Provider::Openai.endpoint(Some("https://x.test/v1")).unwrap(), "https://x.test/v1/chat/completions");
    assert_eq!(Provider::Openai.endpoint(Some("https://x.test/v1/chat/completions")).unwrap(), "https://x.test/v1/chat/completions");
    assert!(Provider::Openai.endpoint(None).unwrap_err().contains("`endpoint` is required"));
    assert_eq!(Provider::Anthropic.endpoint(None).unwrap(), "https://api.anthropic.com/v1/messages");
    assert_eq!(Provider::Anthropic.endpoint(Some("https://proxy.test/v1")).unwrap(), "https://proxy.test/v1/messages");
    assert_eq!(Provider::Anthropic.endpoint(Some("https://proxy.test/v1/messages")).unwrap(), "https://proxy.test/v1/messages");
    assert_eq!(Provider::WorkersAi.endpoint(Some("https://ignored.test")).unwrap(), "");
    assert_eq!(Provider::WorkersAi.endpoint(None).unwrap(), "");
}

#[test]
fn auth_headers_per_provider() {
    assert_eq!(Provider::Openai.headers(Some("k-1")), vec![("authorization", "Bearer k-1".to_owned())]);
    assert!(Provider::Openai.headers(None).is_empty());
    assert_eq!(Provider::Anthropic.headers(Some("k-2")), vec![("anthropic-version", "2023-06-01".to_owned()), ("x-api-key", "k-2".to_owned())]);
    assert_eq!(Provider::Anthropic.headers(None), vec![("anthropic-version", "2023-06-01".to_owned())]);
}

#[test]
fn provider_names_in_the_config() {
    for (name, p) in [("openai", Provider::Openai), ("anthropic", Provider::Anthropic), ("workers-ai", Provider::WorkersAi)] {
        assert_eq!(spec_of(json!({"provider": name, "endpoint": "https://x.test", "model": "m"})).provider, p, "{name}");
    }
    assert_eq!(spec_of(json!({"endpoint": "https://x.test", "model": "m"})).provider, Provider::Openai);
    let cfg = json!({"ensembles": {"e": {"summary": {"provider": "workers_ai", "model": "m"}}}});
    assert!(parse_config(&cfg.to_string(), ConfigOptions::default()).is_err());
    assert_eq!(Provider::default(), Provider::Openai);
}

#[test]
fn call_prefers_the_client_settings_over_the_configured_ones() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "temperature": 0.2, "max_tokens": 99}));
    let r = req(json!({"messages": user("x")}));
    let call = |r: &Request| {
        let c = Call { model: &m, conversation: Conversation::new(&r.messages), params: &r.params, stream: false, with_tools: false };
        (c.temperature(), c.max_tokens())
    };
    assert_eq!(call(&r), (Some(0.2), Some(99)));
    let r2 = req(json!({"messages": user("x"), "temperature": 0.9, "max_tokens": 5, "max_completion_tokens": 7}));
    assert_eq!(call(&r2), (Some(0.9), Some(7)), "max_completion_tokens is the newer name and wins");
}

#[test]
fn openai_body_keeps_client_fields_and_owns_ours() {
    let r = req(json!({
        "model": "council", "stream": true, "stream_options": {"include_usage": true}, "n": 1, "n1": {"progress": true},
        "messages": user("x"),
        "max_tokens": 7, "seed": 3, "top_p": 0.5, "x_vendor": {"a": 1}, "logit_bias": {"5": 1}, "presence_penalty": 0.5,
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"
    }));
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "gpt-x", "temperature": 0.3}));
    let panel = body(Provider::Openai, &m, &r, false, false);
    assert_eq!(panel["model"], "gpt-x");
    assert_eq!(panel["stream"], false);
    assert!(panel.get("stream_options").is_none());
    assert_eq!(panel["max_tokens"], 7);
    assert_eq!(panel["seed"], 3);
    assert_eq!(panel["top_p"], 0.5);
    assert_eq!(panel["x_vendor"]["a"], 1);
    assert_eq!(panel["logit_bias"]["5"], 1);
    assert_eq!(panel["presence_penalty"], 0.5);
    assert_eq!(panel["temperature"], 0.3);
    assert_eq!(panel["messages"], json!([{"role": "user", "content": "x"}]));
    for k in ["tools", "tool_choice", "n", "n1"] {
        assert!(panel.get(k).is_none(), "{k}: {panel}");
    }
    let summary = body(Provider::Openai, &m, &r, true, true);
    assert_eq!(summary["stream"], true);
    assert_eq!(summary["stream_options"], json!({"include_usage": true}));
    assert_eq!(summary["tool_choice"], "auto");
    assert_eq!(summary["tools"], json!([{"type": "function", "function": {"name": "f"}}]));
    assert!(summary.get("n1").is_none() && summary.get("n").is_none());
}

#[test]
fn openai_streams_always_ask_for_usage() {
    let m = spec(Provider::Openai);
    let r = req(json!({"messages": user("x"), "stream": true, "stream_options": {"include_usage": false}}));
    let (text, v) = body_text(Provider::Openai, &m, &r, None, true, true);
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    assert_eq!(text.matches("stream_options").count(), 1, "{text}");
}

#[test]
fn configured_max_tokens_and_extra_body() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "max_tokens": 99, "extra_body": {"top_k": 5, "seed": 1, "model": "nope"}}));
    let (text, v) = body_text(Provider::Openai, &m, &req(json!({"seed": 7, "messages": user("x")})), None, false, false);
    assert_eq!(v["max_tokens"], 99);
    assert_eq!(v["top_k"], 5);
    assert_eq!(v["seed"], 1, "extra_body wins");
    assert_eq!(text.matches("\"seed\"").count(), 1, "{text}");
    assert_eq!(v["model"], "m", "extra_body cannot change what we own");
    assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
    let v = body(Provider::Openai, &m, &req(json!({"max_completion_tokens": 5, "messages": user("x")})), false, false);
    assert!(v.get("max_tokens").is_none(), "{v}");
    assert_eq!(v["max_completion_tokens"], 5);
}

#[test]
fn client_nulls_mean_unset() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "max_tokens": 99, "temperature": 0.2}));
    let r = req(json!({"max_tokens": null, "temperature": null, "stop": null, "seed": null, "user": null, "messages": user("x")}));
    let (text, v) = body_text(Provider::Openai, &m, &r, None, false, false);
    assert_eq!(text.matches("\"max_tokens\"").count(), 1, "{text}");
    assert_eq!(text.matches("\"temperature\"").count(), 1, "{text}");
    assert_eq!(v["max_tokens"], 99);
    assert_eq!(v["temperature"], 0.2);
    for k in ["stop", "seed", "user", "max_completion_tokens"] {
        assert!(v.get(k).is_none(), "{k}: {text}");
    }
    assert!(!text.contains("null"), "no null reaches the upstream: {text}");
}

#[test]
fn client_temperature_wins_over_configured() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "temperature": 0.2}));
    let r = req(json!({"temperature": 1.1, "messages": user("x")}));
    let (text, v) = body_text(Provider::Openai, &m, &r, Some("S"), false, true);
    assert_eq!(v["temperature"], 1.1);
    assert_eq!(v["messages"][0], json!({"role": "system", "content": "S"}));
    assert_eq!(v["messages"][1]["content"], "x");
    assert_eq!(text.matches("\"temperature\"").count(), 1, "{text}");
    // Neither set: no temperature at all.
    let v = body(Provider::Openai, &spec(Provider::Openai), &req(json!({"messages": user("x")})), false, false);
    assert!(v.get("temperature").is_none() && v.get("max_tokens").is_none(), "{v}");
}

#[test]
fn extra_body_wins_but_never_over_what_n1_owns() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "temperature": 0.2, "extra_body": {
        "model": "nope", "messages": [], "stream": true, "stream_options": {"include_usage": false}, "n": 3, "n1": {"x": 1},
        "temperature": 0.9, "x_vendor": 2, "tools": [{"type": "code_interpreter"}], "reasoning_effort": "high"
    }}));
    let r = req(json!({"messages": user("x"), "temperature": 0.5, "x_vendor": 1, "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "f"}}]}));
    for (stream, with_tools) in [(false, false), (true, true)] {
        let (text, v) = body_text(Provider::Openai, &m, &r, None, stream, with_tools);
        assert_eq!(v["model"], "m");
        assert_eq!(v["messages"], json!([{"role": "user", "content": "x"}]));
        assert_eq!(v["stream"], stream);
        assert!(v.get("n").is_none() && v.get("n1").is_none(), "{text}");
        if stream {
            assert_eq!(v["stream_options"], json!({"include_usage": true}));
        } else {
            assert!(v.get("stream_options").is_none(), "{text}");
        }
        assert_eq!(v["temperature"], 0.9, "over the client's and the configured one");
        assert_eq!(v["x_vendor"], 2, "over the client's unknown field");
        assert_eq!(v["reasoning_effort"], "high");
        assert_eq!(v["tools"], json!([{"type": "code_interpreter"}]));
        // Every key once.
        let keys: Vec<&str> = ["\"model\"", "\"messages\"", "\"stream\"", "\"temperature\"", "\"x_vendor\"", "\"reasoning_effort\"", "\"tools\""].to_vec();
        for k in keys {
            assert_eq!(text.matches(k).count(), 1, "{k}: {text}");
        }
    }
}
