use super::*;

#[test]
fn a_summary_that_calls_a_tool_answers_with_the_call() {
    let reply = r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}]}"#;
    let fake = Fake::default().script("s", &[Step::Raw(reply)]);
    let answer = run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    let body = body_of(&answer);
    let msg = &body["choices"][0]["message"];
    assert!(msg["content"].is_null(), "{msg}");
    assert_eq!(msg["tool_calls"][0], json!({"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}));
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    // The summary reported no usage: the panel's stands.
    assert_eq!(body["usage"]["total_tokens"], 15);
}

#[test]
fn without_a_panel_the_summary_answers_the_conversation_as_is() {
    let fake = Fake::default();
    let ens = ensemble(&[], &["s"]);
    let answer = run(&fake, &ens).unwrap();
    let s = &fake.bodies_of("s")[0];
    assert_eq!(s["messages"], json!([{"role": "user", "content": "2+2?"}]));
    assert_eq!(answer.meta.panel_total, 0);
    assert!(!answer.meta.degraded);
    assert_eq!(answer.usage.total_tokens, 15);
}

#[test]
fn an_anthropic_summary_behind_an_openai_panel() {
    let fake = Fake::default();
    let ens = ensemble_of(vec![model("a")], vec![json!({"provider": "anthropic", "model": "claude", "max_tokens": 777})], json!({}));
    let answer = run(&fake, &ens).unwrap();
    let s = &fake.bodies_of("claude")[0];
    assert!(s["system"].as_str().unwrap().contains("answer of a"), "{s}");
    assert_eq!(s["messages"], json!([{"role": "user", "content": "2+2?"}]));
    assert_eq!(s["max_tokens"], 777);
    assert_eq!(answer.completion.text, "answer of claude");
    assert_eq!(answer.usage.total_tokens, 30);
}

#[test]
fn tools_the_ensemble_cannot_run_are_named_in_n1() {
    let fake = Fake::default();
    let mut req = request(false);
    req.ignored_tools = vec!["web_search".into()];
    let answer = complete_with(&fake, &ensemble(&["a"], &["s"]), &req).unwrap();
    assert_eq!(answer.meta.ignored_tools, ["web_search"]);
    assert_eq!(body_of(&answer)["n1"]["ignored_tools"], json!(["web_search"]));
    // On a stream too, and on the best panel answer.
    let fake = Fake::default();
    let ens = ensemble_with(&["a"], &["s"], json!({"on_summary_failure": "best_panel_answer"}));
    let mut sink = VecSink::new();
    req.stream = true;
    stream_with(&fake, &ens, &req, &mut sink, false);
    assert_eq!(sink.finish_chunk()["n1"]["ignored_tools"], json!(["web_search"]));
    // None: no field.
    assert!(body_of(&run(&Fake::default(), &ensemble(&["a"], &["s"])).unwrap())["n1"].get("ignored_tools").is_none());
}

#[test]
fn the_panel_phase_arms_one_timer_not_one_per_answer() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut fake = Fake::default();
    for (i, n) in names.iter().enumerate() {
        fake = fake.script(n, &[Step::Slow(10.0 * (i + 1) as f64)]);
    }
    let ens = ensemble(&names, &["s"]);
    let answer = run(&fake, &ens).unwrap();
    assert_eq!(answer.meta.panel_ok, 6);
    // Slow answers wait inside the fake's models, not through `sleep`, so
    // every recorded sleep is one of the policy's timers.
    assert_eq!(fake.sleeps.borrow().len(), 1, "{:?}", fake.sleeps.borrow());
}

#[test]
fn two_layers_feed_layer_one_answers_to_layer_two() {
    let fake = Fake::default().script("a", &[Step::Answer("A1"), Step::Answer("A2")]).script("b", &[Step::Answer("B1"), Step::Answer("B2")]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"layers": 2}));
    let answer = run(&fake, &ens).unwrap();
    let bodies = fake.bodies.borrow();
    let panel: Vec<&Value> = bodies.iter().filter(|(m, _)| m == "a" || m == "b").map(|(_, b)| b).collect();
    assert_eq!(panel.len(), 4);
    for b in &panel[..2] {
        assert_eq!(b["messages"], json!([{"role": "user", "content": "2+2?"}]), "layer 1 answers the conversation");
    }
    for b in &panel[2..] {
        let sys = b["messages"][0]["content"].as_str().unwrap();
        assert!(sys.starts_with(prompt::LAYER_PROMPT) && sys.contains("A1") && sys.contains("B1"), "{sys}");
        assert_eq!(b["messages"][1]["content"], "2+2?");
    }
    let summary = bodies.last().unwrap().1["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(summary.contains("A2") && summary.contains("B2") && !summary.contains("A1"), "{summary}");
    // 4 panel calls + summary.
    assert_eq!(answer.usage.total_tokens, 75);
    let layers = answer.meta.layers.as_ref().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(body_of(&answer)["n1"]["layers"].as_array().unwrap().len(), 2);
}

#[test]
fn keep_history_false_sends_only_the_last_turn_to_the_summary() {
    let fake = Fake::default();
    let ens = ensemble_with(&["a"], &["s"], json!({"keep_history": false}));
    let req = decode(json!({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "old"}, {"role": "assistant", "content": "r"}, {"role": "user", "content": "new"}]}));
    complete_with(&fake, &ens, &req).unwrap();
    let s = &fake.bodies_of("s")[0];
    let rest: Vec<&str> = s["messages"].as_array().unwrap()[1..].iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(rest, ["S", "new"]);
    // The panel still sees everything.
    assert_eq!(fake.bodies_of("a")[0]["messages"].as_array().unwrap().len(), 4);
    // And with the default, the summary does too.
    let fake = Fake::default();
    complete_with(&fake, &ensemble(&["a"], &["s"]), &req).unwrap();
    assert_eq!(fake.bodies_of("s")[0]["messages"].as_array().unwrap().len(), 5);
}

#[test]
fn stream_relays_summary_and_sums_usage() {
    let fake = Fake::default().stream("s", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a", "b"], &["s"]));
    let ev = sink.events();
    assert_eq!(ev.len(), 5, "{ev:?}"); // role, content, finish + n1, usage, [DONE]
    let first: Value = serde_json::from_str(&ev[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let second: Value = serde_json::from_str(&ev[1]).unwrap();
    assert_eq!(second["choices"][0]["delta"]["content"], "4");
    assert_eq!((second["id"].as_str(), second["model"].as_str()), (Some("chatcmpl-1"), Some("e")));
    let fin: Value = serde_json::from_str(&ev[2]).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(fin["n1"]["panel_ok"], 2);
    assert_eq!(fin["n1"]["summary"]["usage"]["total_tokens"], 2);
    let usage: Value = serde_json::from_str(&ev[3]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 32);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(ev.last().unwrap(), "[DONE]");
    // The summary was asked to stream, with usage.
    let s = &fake.bodies_of("s")[0];
    assert_eq!((s["stream"].as_bool(), s["stream_options"]["include_usage"].as_bool()), (Some(true), Some(true)));
    // No progress events unless asked for.
    assert!(!sink.text().contains("n1_progress"));
}

#[test]
fn no_usage_chunk_unless_asked_for() {
    let fake = Fake::default().stream("s", &[data(GOOD_STREAM)]);
    let mut sink = VecSink::new();
    let req = decode(json!({"stream": true, "messages": [{"role": "user", "content": "2+2?"}]}));
    stream_with(&fake, &ensemble(&["a"], &["s"]), &req, &mut sink, false);
    assert!(sink.json().iter().all(|v| v.get("usage").is_none()), "{}", sink.text());
    assert_eq!(sink.events().last().unwrap(), "[DONE]");
    // The upstream is asked for usage anyway: it goes into `n1`.
    assert_eq!(fake.bodies_of("s")[0]["stream_options"]["include_usage"], true);
    assert_eq!(sink.finish_chunk()["n1"]["summary"]["usage"]["total_tokens"], 2);
}

#[test]
fn progress_events_when_asked_for() {
    let fake = Fake::default().script("b", &[Step::Fail(400)]).stream("s", &[data(GOOD_STREAM)]);
    let mut sink = VecSink::new();
    stream_with(&fake, &ensemble(&["a", "b"], &["s"]), &request(true), &mut sink, true);
    let progress: Vec<Value> = sink.json().into_iter().filter(|v| v.get("n1_progress").is_some()).collect();
    let kinds: Vec<&str> = progress.iter().map(|p| p["n1_progress"]["type"].as_str().unwrap()).collect();
    // a's text streams in as a delta before a's member event.
    assert_eq!(kinds, ["panel_start", "panel_member", "panel_delta", "panel_member", "panel_done", "summary_start"]);
    assert_eq!(progress[2]["n1_progress"]["content"], "answer of a");
    assert_eq!(progress[2]["n1_progress"]["index"], 0);
    for p in &progress {
        assert_eq!(p["choices"][0]["delta"]["content"], "", "progress never adds answer text");
        assert_eq!(p["id"], "chatcmpl-1");
    }
    let start = &progress[0]["n1_progress"];
    assert_eq!(start["panel"], json!([{"index": 0, "model": "a"}, {"index": 1, "model": "b"}]));
    assert_eq!(start["summary"], "s");
    assert!(start.get("layer").is_none());
    let a = progress.iter().find(|p| p["n1_progress"]["model"] == "a" && p["n1_progress"]["type"] == "panel_member").unwrap();
    assert_eq!(a["n1_progress"]["content"], "answer of a");
    assert_eq!(a["n1_progress"]["status"], "ok");
    let b = progress.iter().find(|p| p["n1_progress"]["model"] == "b").unwrap();
    assert_eq!(b["n1_progress"]["status"], "error");
    assert!(b["n1_progress"].get("content").is_none());
    let done = &progress[4]["n1_progress"];
    assert_eq!((done["panel_ok"].as_u64(), done["panel_total"].as_u64(), done["end"].as_str()), (Some(1), Some(2), Some("all")));
    assert_eq!(progress[5]["n1_progress"]["model"], "s");
    // The answer itself is unchanged.
    assert_eq!(sink.content(), "4");
}

#[test]
fn progress_events_name_the_layer_and_report_cancelled_members() {
    let fake = Fake::default().script("c", &[Step::Hang]).stream("s", &[data(GOOD_STREAM)]);
    let ens = ensemble_with(&["a", "b", "c"], &["s"], json!({"layers": 2, "quorum": 2}));
    let mut sink = VecSink::new();
    stream_with(&fake, &ens, &request(true), &mut sink, true);
    let progress: Vec<Value> = sink.json().into_iter().filter_map(|v| v.get("n1_progress").cloned()).collect();
    let starts: Vec<u64> = progress.iter().filter(|p| p["type"] == "panel_start").map(|p| p["layer"].as_u64().unwrap()).collect();
    assert_eq!(starts, [1, 2]);
    let cancelled: Vec<&Value> = progress.iter().filter(|p| p["status"] == "cancelled").collect();
    assert_eq!(cancelled.len(), 2, "c, in each layer: {progress:?}");
    assert!(cancelled.iter().all(|p| p["model"] == "c"));
    let ends: Vec<&str> = progress.iter().filter(|p| p["type"] == "panel_done").map(|p| p["end"].as_str().unwrap()).collect();
    assert_eq!(ends, ["quorum", "quorum"]);
}

#[test]
fn broken_summary_stream_after_content_ends_with_error_then_done() {
    let fake = Fake::default().stream("s", &[data(CONTENT_ONLY), Piece::Broken("connection reset")]).stream("s2", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s", "s2"]));
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "stream_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("connection reset"), "{err}");
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert_eq!(sink.content(), "4", "what was relayed stays");
    assert!(!sink.text().contains("\"n1\""), "no finish chunk");
    assert!(!fake.called("s2"), "no fallback once the answer has started");
    assert!(fake.aborts.get() >= 1);
}

#[test]
fn truncated_summary_stream_after_content_is_an_error() {
    let fake = Fake::default().stream("s", &[data(CONTENT_ONLY)]).stream("s2", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s", "s2"]));
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "stream_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("ended before the answer was complete"), "{err}");
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert!(!fake.called("s2"));
}

#[test]
fn summary_stream_failing_before_its_first_token_falls_back() {
    let fake = Fake::default().script("s0", &[Step::Fail(404)]).stream("s1", &[data("data: ###\n\n")]).stream("s2", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s0", "s1", "s2"]));
    let values = sink.json();
    assert!(values.iter().all(|v| v.get("error").is_none()), "{}", sink.text());
    assert_eq!(sink.content(), "4");
    let fin = sink.finish_chunk();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(fin["n1"]["summary"]["model"], "s2");
    let failed: Vec<&str> = fin["n1"]["summary"]["failed"].as_array().unwrap().iter().map(|f| f["model"].as_str().unwrap()).collect();
    assert_eq!(failed, ["s0", "s1"]);
    assert!(fin["n1"]["summary"]["failed"][1]["reason"].as_str().unwrap().contains("malformed"), "{fin}");
    assert_eq!(sink.events().last().unwrap(), "[DONE]");
}

#[test]
fn bookkeeping_events_before_a_failure_still_allow_the_fallback() {
    // A role chunk, usage and a finish reason are no part of the answer: a
    // model that sent only those and then broke hands over to the next one.
    let s1 = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
              data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":0}}\n\n\
              data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    let fake = Fake::default().stream("s1", &[data(s1), Piece::Broken("reset")]).stream("s2", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s1", "s2"]));
    assert!(sink.json().iter().all(|v| v.get("error").is_none()), "{}", sink.text());
    assert_eq!(sink.content(), "4");
    let fin = sink.finish_chunk();
    assert_eq!(fin["n1"]["summary"]["model"], "s2");
    assert_eq!(fin["n1"]["summary"]["failed"][0]["model"], "s1");
    // The usage of the answer that went out: panel 15 + s2's 2.
    let usage = sink.json().into_iter().find(|v| v.get("usage").is_some()).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 17);
}
