use super::*;

#[test]
fn summary_sees_every_successful_answer_and_the_conversation() {
    let fake = Fake::default().script("b", &[Step::Fail(400)]);
    let ens = ensemble(&["a", "b", "c"], &["s"]);
    let answer = run(&fake, &ens).unwrap();
    let bodies = fake.bodies.borrow();
    let (name, summary) = bodies.last().unwrap();
    assert_eq!(name, "s");
    assert_eq!(summary["messages"][0]["role"], "system");
    let system = summary["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("answer of a") && system.contains("answer of c"), "{system}");
    assert!(!system.contains("answer of b"));
    assert_eq!(summary["messages"][1], json!({"role": "user", "content": "2+2?"}));
    assert_eq!(summary["messages"].as_array().unwrap().len(), 2);
    assert_eq!(answer.meta.panel_ok, 2);
    assert_eq!(answer.meta.panel_total, 3);
    assert!(answer.meta.degraded);
    assert!(!answer.fallback);
    // 2 panel answers + summary, 15 tokens each.
    assert_eq!(answer.usage.total_tokens, 45);
    let body = body_of(&answer);
    assert_eq!(body["usage"]["total_tokens"], 45);
    assert_eq!(body["choices"][0]["message"]["content"], "answer of s");
    assert_eq!(body["n1"]["panel"][1]["status"], "error");
    assert_eq!(body["n1"]["panel"][1]["error"]["status"], 400);
    assert_eq!(body["n1"]["panel"][0]["status"], "ok");
    assert_eq!(body["n1"]["panel"][0]["usage"]["total_tokens"], 15);
    assert_eq!(body["n1"]["summary"]["model"], "s");
    assert_eq!(body["n1"]["summary"]["status"], "ok");
}

#[test]
fn a_full_panel_is_not_degraded() {
    let fake = Fake::default();
    let a = run(&fake, &ensemble(&["a", "b"], &["s"])).unwrap();
    assert!(!a.meta.degraded);
    assert_eq!(a.meta.panel_end, PanelEnd::All);
    assert_eq!(a.meta.panel.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(a.meta.layers.is_none());
}

#[test]
fn all_panel_failed_is_a_502_listing_each_model() {
    let fake = Fake::default().script("a", &[Step::Fail(401)]).script("b", &[Step::Fail(404)]);
    let ens = ensemble(&["a", "b"], &["s"]);
    let err = run(&fake, &ens).err().unwrap();
    assert_eq!(err.status(), 502);
    assert_eq!(err.code(), Some("panel_failed"));
    let msg = err.message();
    assert!(msg.contains("a (HTTP 401)") && msg.contains("b (HTTP 404)"), "{msg}");
    assert!(!fake.called("s"), "no summary call");
}

#[test]
fn never_more_than_six_calls_in_flight() {
    let fake = Fake::default();
    let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let answer = run(&fake, &ensemble(&refs, &["s"])).unwrap();
    assert_eq!(answer.meta.panel_ok, 12);
    assert_eq!(fake.max_in_flight.get(), MAX_IN_FLIGHT);
    assert_eq!(MAX_IN_FLIGHT, 6);
}

#[test]
fn transient_failures_are_retried_with_backoff() {
    let fake = Fake::default().script("a", &[Step::Fail(500), Step::Network, Step::Answer("third time")]);
    let answer = run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    assert_eq!(fake.attempts_of("a"), 3);
    assert_eq!(answer.meta.panel[0].attempts, 3);
    assert_eq!(answer.meta.panel[0].status, MemberStatus::Ok);
    assert!(fake.bodies.borrow().last().unwrap().1["messages"][0]["content"].as_str().unwrap().contains("third time"));
    // Backoff with r = 0.5: 375 ms, then 750 ms.
    let sleeps = fake.sleeps.borrow();
    assert!(sleeps.contains(&375) && sleeps.contains(&750), "{sleeps:?}");
}

#[test]
fn other_4xx_are_not_retried_and_retries_are_bounded() {
    let fake = Fake::default().script("a", &[Step::Fail(400)]).script("b", &[Step::Fail(503)]);
    let ens = ensemble(&["a", "b", "c"], &["s"]);
    let answer = run(&fake, &ens).unwrap();
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(fake.attempts_of("b"), 1 + retry::DEFAULT_MAX_RETRIES as usize);
    assert_eq!(answer.meta.panel[1].attempts, 1 + retry::DEFAULT_MAX_RETRIES);
    assert_eq!(answer.meta.panel_ok, 1);
}

#[test]
fn max_retries_from_the_config_bounds_retries() {
    let fake = Fake::default().script("a", &[Step::Fail(503)]).script("b", &[Step::Fail(503)]);
    let mut a = model("a");
    a["max_retries"] = json!(0);
    let mut b = model("b");
    b["max_retries"] = json!(4);
    let ens = ensemble_of(vec![a, b, model("c")], vec![model("s")], json!({}));
    run(&fake, &ens).unwrap();
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(fake.attempts_of("b"), 5);
}

#[test]
fn a_timed_out_attempt_is_not_retried() {
    let fake = Fake::default().script("a", &[Step::Hang]);
    let answer = run(&fake, &ensemble(&["a", "b"], &["s"])).unwrap();
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(answer.meta.panel[0].status, MemberStatus::Timeout);
    // The model's own timeout_ms (10 s) bounded the attempt.
    assert!((10_000.0..11_000.0).contains(&fake.now()), "{}", fake.now());
}

#[test]
fn retry_after_is_honoured() {
    let fake = Fake::default().script("a", &[Step::FailRetryAfter(429, 1200), Step::Answer("")]);
    run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    assert!(fake.sleeps.borrow().contains(&1200), "{:?}", fake.sleeps.borrow());
    assert_eq!(fake.attempts_of("a"), 2);
}

#[test]
fn a_retry_that_would_miss_the_deadline_is_not_made() {
    let fake = Fake::default().script("a", &[Step::FailRetryAfter(429, 15_000), Step::Answer("")]).script("b", &[Step::Answer("")]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"panel_timeout_ms": 5000}));
    let answer = run(&fake, &ens).unwrap();
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(body_of(&answer)["n1"]["panel"][0]["error"]["status"], 429);
    assert!(!fake.sleeps.borrow().contains(&15_000));
}

#[test]
fn attempts_never_get_more_time_than_is_left() {
    let fake = Fake::default();
    let ens = ensemble_with(&["a"], &["s"], json!({"request_timeout_ms": 3000}));
    run(&fake, &ens).unwrap();
    let timeouts = fake.timeouts.borrow();
    assert_eq!(timeouts.len(), 2);
    for (m, t) in timeouts.iter() {
        assert!(*t <= 3000 && *t > 2900, "{m}: {t}");
    }
}

#[test]
fn panel_timeout_drops_stragglers_and_synthesizes_the_rest() {
    let fake = Fake::default().script("slow", &[Step::Slow(5_000.0)]);
    let ens = ensemble_with(&["fast", "slow"], &["s"], json!({"panel_timeout_ms": 1000}));
    let answer = run(&fake, &ens).unwrap();
    let body = body_of(&answer);
    assert_eq!(body["n1"]["panel"][1]["status"], "timeout");
    assert_eq!(body["n1"]["panel_end"], "timeout");
    assert_eq!(answer.meta.panel_ok, 1);
    assert!(fake.aborts.get() >= 1, "stragglers aborted");
    assert!(fake.now() < 2000.0, "did not wait for the straggler: {}", fake.now());
    let system = fake.bodies_of("s")[0]["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.contains("answer of fast") && !system.contains("answer of slow"));
}

#[test]
fn quorum_starts_synthesis_early_and_cancels_the_rest() {
    let fake = Fake::default().script("c", &[Step::Hang]);
    let ens = ensemble_with(&["a", "b", "c"], &["s"], json!({"quorum": 2}));
    let answer = run(&fake, &ens).unwrap();
    let body = body_of(&answer);
    assert_eq!(body["n1"]["panel"][2]["status"], "cancelled");
    assert_eq!(body["n1"]["panel"][2]["attempts"], 1);
    assert_eq!(body["n1"]["panel_end"], "quorum");
    assert_eq!(fake.aborts.get(), 1);
    assert!(fake.now() < 1000.0, "{}", fake.now());
}

#[test]
fn members_cancelled_while_queued_made_no_attempt() {
    let names: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut fake = Fake::default();
    for n in &refs[1..] {
        fake = fake.script(n, &[Step::Hang]);
    }
    let ens = ensemble_with(&refs, &["s"], json!({"quorum": 1}));
    let answer = run(&fake, &ens).unwrap();
    let attempts: Vec<u32> = answer.meta.panel.iter().map(|p| p.attempts).collect();
    assert_eq!(attempts, [1, 1, 1, 1, 1, 1, 0, 0]);
    let statuses: Vec<MemberStatus> = answer.meta.panel.iter().map(|p| p.status).collect();
    assert_eq!(statuses[0], MemberStatus::Ok);
    assert!(statuses[1..].iter().all(|s| *s == MemberStatus::Cancelled), "{statuses:?}");
    assert!(!fake.called("m6") && !fake.called("m7"));
}

#[test]
fn min_panel_is_enforced() {
    let fake = Fake::default().script("b", &[Step::Fail(400)]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"min_panel": 2}));
    let err = run(&fake, &ens).err().unwrap();
    assert!(matches!(err, N1Error::PanelFailed { answered: 1, needed: 2, .. }), "{err:?}");
    assert!(!fake.called("s"));
}

#[test]
fn a_2xx_reply_that_cannot_be_read_is_a_failure() {
    let fake = Fake::default().script("a", &[Step::Raw("<html>oops</html>")]).script("s1", &[Step::Raw("{\"choices\": []}")]);
    let answer = run(&fake, &ensemble(&["a", "b"], &["s1", "s2"])).unwrap();
    let a = &answer.meta.panel[0];
    assert_eq!(a.status, MemberStatus::Error);
    assert_eq!(a.error.as_ref().unwrap().status, Some(200));
    // Not an SSE stream: nothing came before its end.
    assert!(a.error.as_ref().unwrap().reason.contains("panel model's stream ended before the answer was complete"), "{:?}", a.error);
    // Not retried: the same reply would come back.
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(answer.meta.summary.model, "s2");
    assert!(answer.meta.summary.failed[0].reason.contains("no choices"), "{:?}", answer.meta.summary.failed);
}

#[test]
fn summary_falls_back_to_the_next_model() {
    let fake = Fake::default().script("s1", &[Step::Fail(400)]);
    let answer = run(&fake, &ensemble(&["a"], &["s1", "s2"])).unwrap();
    let body = body_of(&answer);
    assert_eq!(body["n1"]["summary"]["model"], "s2");
    assert_eq!(body["n1"]["summary"]["failed"][0]["model"], "s1");
    assert_eq!(body["choices"][0]["message"]["content"], "answer of s2");
    assert!(!answer.fallback);
    // The panel is still complete: a summary fallback alone does not degrade.
    assert!(!answer.meta.degraded);
}

#[test]
fn best_panel_answer_when_every_summary_fails() {
    let fake = Fake::default().script("s", &[Step::Fail(400)]).script("a", &[Step::Fail(400)]).script("b", &[Step::Answer("B SAYS")]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"on_summary_failure": "best_panel_answer"}));
    let answer = run(&fake, &ens).unwrap();
    assert!(answer.fallback && answer.meta.degraded);
    assert_eq!(answer.meta.summary.status, SummaryStatus::BestPanelAnswer);
    let body = body_of(&answer);
    assert_eq!(body["choices"][0]["message"]["content"], "B SAYS");
    assert_eq!(body["n1"]["summary"]["status"], "best_panel_answer");
    assert_eq!(body["n1"]["summary"]["model"], "b");
    assert_eq!(body["n1"]["summary"]["failed"][0]["model"], "s");
    // The panel's usage only (b's 15 tokens).
    assert_eq!(answer.usage.total_tokens, 15);
    // Without the option it is an error.
    let fake = Fake::default().script("s", &[Step::Fail(400)]);
    let err = run(&fake, &ensemble(&["a"], &["s"])).err().unwrap();
    assert_eq!(err.status(), 502);
    assert_eq!(err.code(), Some("summary_failed"));
    assert!(err.message().contains("s (HTTP 400)"), "{}", err.message());
}

#[test]
fn request_ceiling_ends_a_hung_request() {
    let fake = Fake::default().script("s", &[Step::Hang]);
    let ens = ensemble_with(&["a"], &["s"], json!({"request_timeout_ms": 3000}));
    let err = run(&fake, &ens).err().unwrap();
    assert_eq!(err.status(), 504);
    assert_eq!(err, N1Error::RequestTimeout(3000));
    assert!(fake.now() <= 3100.0, "{}", fake.now());
}

#[test]
fn request_ceiling_wins_over_best_panel_answer() {
    let fake = Fake::default().script("s", &[Step::Hang]);
    let ens = ensemble_with(&["a"], &["s"], json!({"request_timeout_ms": 3000, "on_summary_failure": "best_panel_answer"}));
    assert_eq!(run(&fake, &ens).err().unwrap().status(), 504);
}

#[test]
fn panel_gets_text_only_and_the_summary_gets_the_tools() {
    let fake = Fake::default();
    let req = decode(json!({
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "12 C"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto"
    }));
    complete_with(&fake, &ensemble(&["a"], &["s"]), &req).unwrap();
    let panel = &fake.bodies_of("a")[0];
    assert!(panel.get("tools").is_none() && panel.get("tool_choice").is_none(), "{panel}");
    let roles: Vec<&str> = panel["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "tool turns become text for the panel");
    assert!(panel["messages"][2]["content"].as_str().unwrap().starts_with("[Result of tool call c1]"));
    let summary = &fake.bodies_of("s")[0];
    assert_eq!(summary["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(summary["tool_choice"], "auto");
    assert_eq!(summary["messages"][3]["role"], "tool", "the summary sees the conversation as it is");
    assert_eq!(summary["messages"][2]["tool_calls"][0]["id"], "c1");
}

#[test]
fn a_panel_stream_left_open_after_its_last_event_is_an_answer_at_once() {
    // `[DONE]`, then the connection stays open: the answer is complete.
    let fake = Fake::default().stream("a", &[data(GOOD_STREAM), Piece::Stall]);
    let answer = run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    assert_eq!(answer.meta.panel[0].status, MemberStatus::Ok);
    assert!(fake.now() < 100.0, "waited for the body's end until {}", fake.now());
    let (_, summary) = fake.bodies.borrow().last().cloned().unwrap();
    assert!(summary["messages"][0]["content"].as_str().unwrap().contains("<answer id=\"1\">\n4\n</answer>"), "{summary}");
}
