use super::*;

#[test]
fn a_broken_connection_before_the_first_token_falls_back() {
    let fake = Fake::default().stream("s1", &[Piece::Broken("reset by peer")]).stream("s2", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s1", "s2"]));
    assert_eq!(sink.content(), "4");
    let fin = sink.finish_chunk();
    assert_eq!(fin["n1"]["summary"]["model"], "s2");
    assert!(fin["n1"]["summary"]["failed"][0]["reason"].as_str().unwrap().contains("reset by peer"), "{fin}");
}

#[test]
fn opening_the_summary_stream_is_retried() {
    let fake = Fake::default().script("s", &[Step::Fail(503), Step::Answer("")]).stream("s", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s"]));
    assert_eq!(fake.attempts_of("s"), 2);
    assert_eq!(sink.content(), "4");
    assert!(fake.sleeps.borrow().contains(&375), "{:?}", fake.sleeps.borrow());
}

#[test]
fn secrets_are_scrubbed_from_upstream_error_events() {
    let mut fake = Fake::default().stream(
        "s",
        &[data(CONTENT_ONLY), data("data: {\"error\":{\"message\":\"Invalid key sk-live-SECRET-1 for org\",\"type\":\"server_error\"}}\n\n")],
    );
    fake.secrets = Secrets::new(["sk-live-SECRET-1".to_owned()]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s"]));
    assert!(!sink.text().contains("SECRET"), "{}", sink.text());
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Invalid key [redacted] for org"), "{msg}");
    assert_eq!(err["error"]["code"], "stream_error");
    assert_eq!(ev.last().unwrap(), "[DONE]");
}

#[test]
fn an_upstream_error_before_the_first_token_falls_back_with_a_scrubbed_reason() {
    let mut fake = Fake::default()
        .stream("s1", &[data("data: {\"error\":{\"message\":\"quota for sk-live-SECRET-2 exceeded\"}}\n\n")])
        .stream("s2", &[data(GOOD_STREAM)]);
    fake.secrets = Secrets::new(["sk-live-SECRET-2".to_owned()]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s1", "s2"]));
    assert!(!sink.text().contains("SECRET"), "{}", sink.text());
    let fin = sink.finish_chunk();
    let reason = fin["n1"]["summary"]["failed"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("quota for [redacted] exceeded"), "{reason}");
    assert_eq!(sink.content(), "4");
}

#[test]
fn secrets_are_scrubbed_from_broken_connections() {
    // Before the first token: the reason in `n1`.
    let mut fake = Fake::default().stream("s1", &[Piece::Broken("proxy refused key sk-live-SECRET-3")]).stream("s2", &[data(GOOD_STREAM)]);
    fake.secrets = Secrets::new(["sk-live-SECRET-3".to_owned()]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s1", "s2"]));
    assert!(!sink.text().contains("SECRET"), "{}", sink.text());
    assert!(sink.finish_chunk()["n1"]["summary"]["failed"][0]["reason"].as_str().unwrap().contains("proxy refused key [redacted]"));
    // After it: the error event.
    let mut fake = Fake::default().stream("s", &[data(CONTENT_ONLY), Piece::Broken("proxy refused key sk-live-SECRET-3")]);
    fake.secrets = Secrets::new(["sk-live-SECRET-3".to_owned()]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s"]));
    assert!(!sink.text().contains("SECRET"), "{}", sink.text());
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("proxy refused key [redacted]"), "{err}");
}

#[test]
fn an_anthropic_summary_stream_is_relayed_as_chat_chunks() {
    let anthropic = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Four\"}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":3}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let fake = Fake::default().stream("claude", &[data(anthropic)]);
    let ens = ensemble_of(vec![model("a")], vec![json!({"provider": "anthropic", "model": "claude"})], json!({}));
    let sink = run_stream(&fake, &ens);
    assert_eq!(sink.content(), "Four");
    assert_eq!(sink.finish_chunk()["choices"][0]["finish_reason"], "length");
    let usage = sink.json().into_iter().find(|v| v.get("usage").is_some()).unwrap();
    assert_eq!(usage["usage"], json!({"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}));
    assert_eq!(fake.bodies_of("claude")[0]["stream"], true);
}

#[test]
fn stream_with_failed_panel_sends_error_event() {
    let fake = Fake::default().script("a", &[Step::Fail(400)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s"]));
    let ev = sink.events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    let role: Value = serde_json::from_str(&ev[0]).unwrap();
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    let err: Value = serde_json::from_str(&ev[1]).unwrap();
    assert_eq!(err["error"]["code"], "panel_failed");
    assert_eq!(err["error"]["failures"][0]["model"], "a");
    assert_eq!(ev[2], "[DONE]");
    assert!(!fake.called("s"));
}

#[test]
fn stream_with_every_summary_failing_sends_summary_failed() {
    let fake = Fake::default().script("s1", &[Step::Fail(404)]).script("s2", &[Step::Fail(404)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s1", "s2"]));
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "summary_failed");
    assert_eq!(err["error"]["failures"].as_array().unwrap().len(), 2);
    assert_eq!(ev.last().unwrap(), "[DONE]");
}

#[test]
fn best_panel_answer_on_a_stream() {
    let fake = Fake::default().script("a", &[Step::Answer("A SAYS")]).script("s", &[Step::Fail(404)]);
    let ens = ensemble_with(&["a"], &["s"], json!({"on_summary_failure": "best_panel_answer"}));
    let sink = run_stream(&fake, &ens);
    assert!(sink.json().iter().all(|v| v.get("error").is_none()), "{}", sink.text());
    assert_eq!(sink.content(), "A SAYS");
    let fin = sink.finish_chunk();
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(fin["n1"]["summary"]["status"], "best_panel_answer");
    assert_eq!(fin["n1"]["summary"]["model"], "a");
    assert_eq!(fin["n1"]["degraded"], true);
    let usage = sink.json().into_iter().find(|v| v.get("usage").is_some()).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 15);
    assert_eq!(sink.events().last().unwrap(), "[DONE]");
}

#[test]
fn an_idle_summary_stream_before_its_first_token_falls_back() {
    let fake = Fake::default().stream("s1", &[Piece::Stall]).stream("s2", &[data(GOOD_STREAM)]);
    let mut s1 = model("s1");
    s1["timeout_ms"] = json!(2000);
    let ens = ensemble_of(vec![model("a")], vec![s1, model("s2")], json!({}));
    let sink = run_stream(&fake, &ens);
    assert_eq!(sink.content(), "4");
    let fin = sink.finish_chunk();
    assert_eq!(fin["n1"]["summary"]["model"], "s2");
    assert!(fin["n1"]["summary"]["failed"][0]["reason"].as_str().unwrap().contains("sent nothing for 2000 ms"), "{fin}");
    assert!((2000.0..3000.0).contains(&fake.now()), "{}", fake.now());
    assert!(fake.aborts.get() >= 1, "the idle stream is aborted");
}

#[test]
fn an_idle_summary_stream_after_content_is_an_error() {
    let fake = Fake::default().stream("s", &[data(CONTENT_ONLY), Piece::Stall]).stream("s2", &[data(GOOD_STREAM)]);
    let mut s = model("s");
    s["timeout_ms"] = json!(2000);
    let ens = ensemble_of(vec![model("a")], vec![s, model("s2")], json!({}));
    let sink = run_stream(&fake, &ens);
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("sent nothing for 2000 ms"), "{err}");
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert!(!fake.called("s2"));
}

#[test]
fn a_slow_but_steady_stream_is_not_idle() {
    let piece = |t: &str| data(&format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n"));
    let pieces = [piece("a"), Piece::Pause(1500.0), piece("b"), Piece::Pause(1500.0), piece("c"), Piece::Pause(1500.0), data(GOOD_STREAM)];
    let fake = Fake::default().stream("s", &pieces);
    let mut s = model("s");
    s["timeout_ms"] = json!(2000);
    let ens = ensemble_of(vec![model("a")], vec![s], json!({}));
    let sink = run_stream(&fake, &ens);
    assert_eq!(sink.content(), "abc4", "{}", sink.text());
    assert!(fake.now() > 4000.0, "the stream took longer than one idle window: {}", fake.now());
    assert!(sink.finish_chunk()["n1"]["summary"]["status"] == "ok");
}

#[test]
fn the_request_ceiling_ends_a_stream_with_request_timeout() {
    let fake = Fake::default().stream("s", &[data(CONTENT_ONLY), Piece::Stall]);
    let ens = ensemble_with(&["a"], &["s"], json!({"request_timeout_ms": 3000}));
    let sink = run_stream(&fake, &ens);
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "request_timeout");
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert!(fake.now() <= 3100.0, "{}", fake.now());
}

#[test]
fn keep_alives_while_a_slow_panel_thinks() {
    let fake = Fake::default().script("a", &[Step::Slow(12_000.0)]).stream("s", &[data(GOOD_STREAM)]);
    let mut a = model("a");
    a["timeout_ms"] = json!(60_000);
    let ens = ensemble_of(vec![a], vec![model("s")], json!({"keep_alive_ms": 5000}));
    let sink = run_stream(&fake, &ens);
    let text = sink.text();
    // One every quarter of keep_alive_ms (1250 ms) while the panel works: 9 in 12 s.
    assert_eq!(text.matches(": keep-alive").count(), 9, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(sink.content(), "4");
    // None once the summary streams.
    let after_panel = text.find("\"content\":\"4\"").unwrap();
    assert!(!text[after_panel..].contains("keep-alive"));
    // One timer, re-armed when it fires: the first and one per keep-alive (the
    // relay's idle timer never ran: the summary's reads came at once).
    assert_eq!(fake.sleeps.borrow().len(), 1 + 9, "{:?}", fake.sleeps.borrow());
}

#[test]
fn a_streamed_panel_arms_one_timer_not_one_per_answer() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut fake = Fake::default().stream("s", &[data(GOOD_STREAM)]);
    for (i, n) in names.iter().enumerate() {
        fake = fake.script(n, &[Step::Slow(10.0 * (i + 1) as f64)]);
    }
    let mut sink = VecSink::new();
    stream_with(&fake, &ensemble(&names, &["s"]), &request(true), &mut sink, true);
    assert_eq!(sink.content(), "4");
    // The panel's one timer (with progress events, the 100 ms delta flush,
    // never reached): six answers re-armed nothing.
    assert_eq!(*fake.sleeps.borrow(), [100]);
}

#[test]
fn client_leaving_aborts_upstream_calls() {
    let fake = Fake::default().script("a", &[Step::Slow(12_000.0)]);
    let mut a = model("a");
    a["timeout_ms"] = json!(60_000);
    let ens = ensemble_of(vec![a], vec![model("s")], json!({"keep_alive_ms": 5000}));
    let mut sink = VecSink::new();
    sink.leave_after = Some(1); // the role chunk goes out; the first keep-alive fails
    stream_with(&fake, &ens, &request(true), &mut sink, false);
    assert_eq!(fake.aborts.get(), 1);
    assert!(!fake.called("s"));
    // Noticed at the first keep-alive, a quarter of keep_alive_ms in.
    assert!(fake.now() < 2000.0, "stopped at the first keep-alive: {}", fake.now());
    assert_eq!(sink.events().len(), 1);
}

#[test]
fn client_seen_leaving_during_the_panel_stops_it() {
    let fake = Fake::default().script("a", &[Step::Slow(12_000.0)]);
    let mut a = model("a");
    a["timeout_ms"] = json!(60_000);
    let ens = ensemble_of(vec![a], vec![model("s")], json!({}));
    let mut sink = VecSink::new();
    sink.gone_at = Some((fake.clock.clone(), 1000.0));
    stream_with(&fake, &ens, &request(true), &mut sink, false);
    assert_eq!(fake.aborts.get(), 1);
    assert!(!fake.called("s"));
    assert!(fake.now() < 2000.0, "{}", fake.now());
    assert!(!sink.text().contains("[DONE]"));
}

#[test]
fn client_seen_leaving_mid_summary_aborts_the_upstream_stream() {
    let fake = Fake::default().stream("s", &[data(CONTENT_ONLY), Piece::Stall]);
    let mut sink = VecSink::new();
    sink.gone_at = Some((fake.clock.clone(), 5000.0));
    stream_with(&fake, &ensemble(&["a"], &["s"]), &request(true), &mut sink, false);
    assert_eq!(fake.aborts.get(), 1);
    assert!((5000.0..6000.0).contains(&fake.now()), "{}", fake.now());
    assert_eq!(sink.content(), "4");
    assert!(!sink.text().contains("[DONE]") && !sink.text().contains("error"), "{}", sink.text());
}

#[test]
fn a_summary_stream_left_open_after_its_last_event_ends_the_reply_at_once() {
    let fake = Fake::default().stream("s", &[data(GOOD_STREAM), Piece::Stall]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s"]));
    assert_eq!(sink.content(), "4");
    let fin = sink.finish_chunk();
    assert_eq!(fin["n1"]["summary"]["status"], "ok", "{fin}");
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(sink.events().last().unwrap(), "[DONE]");
    assert!(fake.now() < 100.0, "waited for the body's end until {}", fake.now());
}
