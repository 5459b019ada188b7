//! The ensemble policy against scripted fake models on a virtual clock.

use super::*;
use crate::config::parse_config;
use crate::request::parse_chat_request;
use futures::executor::block_on;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::task::Poll;

/// One scripted attempt of a model.
#[derive(Clone)]
enum Step {
    Answer(&'static str),
    /// Answer after this many virtual ms.
    Slow(f64),
    Fail(u16),
    FailRetryAfter(u16, u64),
    Network,
    /// Never answers (until the attempt's timeout).
    Hang,
}

#[derive(Default)]
struct Fake {
    scripts: HashMap<String, Vec<Step>>,
    streams: HashMap<String, Vec<Result<Vec<u8>, String>>>,
    attempts: RefCell<HashMap<String, usize>>,
    bodies: RefCell<Vec<(String, Value)>>,
    clock: Cell<f64>,
    sleeps: RefCell<Vec<u64>>,
    aborts: Cell<usize>,
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
}

/// Pending once (waking itself), then ready: lets other futures run.
async fn yield_now() {
    let mut done = false;
    futures::future::poll_fn(|cx| {
        if done {
            Poll::Ready(())
        } else {
            done = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

impl Fake {
    fn script(mut self, model: &str, steps: &[Step]) -> Self {
        self.scripts.insert(model.into(), steps.to_vec());
        self
    }
    fn attempts_of(&self, model: &str) -> usize {
        self.attempts.borrow().get(model).copied().unwrap_or(0)
    }
    fn called(&self, model: &str) -> bool {
        self.attempts_of(model) > 0
    }
    /// Wait until virtual time `t`. Every waiter moves the clock 1 ms per
    /// round, so time passes while anyone waits, a little faster the more wait.
    async fn wait_until(&self, t: f64) {
        while self.clock.get() < t {
            self.clock.set(self.clock.get() + 1.0);
            yield_now().await;
        }
    }
}

impl Runtime for Fake {
    type Body = futures::stream::Iter<std::vec::IntoIter<Result<Vec<u8>, String>>>;

    async fn complete(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Completion, Failure> {
        self.bodies.borrow_mut().push((m.model.clone(), serde_json::from_str(body).unwrap()));
        let n = {
            let mut a = self.attempts.borrow_mut();
            let e = a.entry(m.model.clone()).or_default();
            *e += 1;
            *e - 1
        };
        let steps = self.scripts.get(&m.model).cloned().unwrap_or_default();
        let step = steps.get(n).or(steps.last()).cloned().unwrap_or(Step::Answer(""));
        self.in_flight.set(self.in_flight.get() + 1);
        self.max_in_flight.set(self.max_in_flight.get().max(self.in_flight.get()));
        yield_now().await;
        let start = self.clock.get();
        let limit = start + timeout_ms as f64;
        let result = match step {
            Step::Slow(ms) if ms >= timeout_ms as f64 => {
                self.wait_until(limit).await;
                Err(Failure::new(&m.model, None, "timeout", "too slow"))
            }
            Step::Slow(ms) => {
                self.wait_until(start + ms).await;
                Ok(format!("answer of {}", m.model))
            }
            Step::Hang => {
                self.wait_until(limit).await;
                Err(Failure::new(&m.model, None, "timeout", "hung"))
            }
            Step::Answer("") => Ok(format!("answer of {}", m.model)),
            Step::Answer(t) => Ok(t.to_owned()),
            Step::Fail(s) => Err(Failure::new(&m.model, Some(s), "error", "scripted")),
            Step::FailRetryAfter(s, ra) => Err(Failure { retry_after_ms: Some(ra), ..Failure::new(&m.model, Some(s), "error", "slow down") }),
            Step::Network => Err(Failure::new(&m.model, None, "error", "connection reset")),
        };
        self.in_flight.set(self.in_flight.get() - 1);
        result.map(|text| Completion {
            message: json!({"role": "assistant", "content": text}),
            finish_reason: Some("stop".into()),
            usage: Some(Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }),
        })
    }

    async fn open_stream(&self, m: &ModelSpec, body: &str, _timeout_ms: u64) -> Result<Self::Body, Failure> {
        self.bodies.borrow_mut().push((m.model.clone(), serde_json::from_str(body).unwrap()));
        *self.attempts.borrow_mut().entry(m.model.clone()).or_default() += 1;
        match self.streams.get(&m.model) {
            Some(chunks) => Ok(futures::stream::iter(chunks.clone())),
            None => Err(Failure::new(&m.model, Some(404), "error", "no such model")),
        }
    }

    fn now_ms(&self) -> f64 {
        self.clock.get()
    }
    async fn sleep(&self, ms: u64) {
        self.sleeps.borrow_mut().push(ms);
        self.wait_until(self.clock.get() + ms as f64).await
    }
    fn random(&self) -> f64 {
        0.5
    }
    fn abort_in_flight(&self) {
        self.aborts.set(self.aborts.get() + 1);
    }
    fn secrets(&self) -> Vec<String> {
        vec![]
    }
}

struct VecSink {
    bytes: Vec<u8>,
    /// The client leaves after this many sends.
    leave_after: Option<usize>,
    sends: usize,
}

impl VecSink {
    fn new() -> Self {
        VecSink { bytes: vec![], leave_after: None, sends: 0 }
    }
    fn events(&self) -> Vec<String> {
        let mut p = crate::sse::Parser::new();
        let mut ev = Vec::new();
        p.push(&self.bytes, &mut ev).unwrap();
        ev.into_iter().map(|e| e.data).collect()
    }
}

impl Sink for VecSink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        if self.leave_after.is_some_and(|n| self.sends >= n) {
            return Err(());
        }
        self.sends += 1;
        self.bytes.extend_from_slice(&bytes);
        Ok(())
    }
    fn gone(&self) -> Gone {
        Box::pin(futures::future::pending())
    }
}

fn ensemble_with(panel: &[&str], summary: &[&str], policy: Value) -> Ensemble {
    let m = |n: &&str| json!({"endpoint": "https://x.test/v1", "model": n, "timeout_ms": 10_000});
    let mut e = json!({
        "panel": panel.iter().map(m).collect::<Vec<_>>(),
        "summary": summary.iter().map(m).collect::<Vec<_>>(),
    });
    e.as_object_mut().unwrap().extend(policy.as_object().unwrap().clone());
    parse_config(&json!({"ensembles": {"e": e}}).to_string(), crate::config::ConfigOptions::default()).unwrap().ensembles.remove(0)
}

fn ensemble(panel: &[&str], summary: &[&str]) -> Ensemble {
    ensemble_with(panel, summary, json!({}))
}

fn request(stream: bool) -> ChatRequest {
    let body = json!({"model": "e", "stream": stream, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "2+2?"}]});
    parse_chat_request(body.to_string().as_bytes()).unwrap()
}

fn ids() -> ReplyIds {
    ReplyIds { id: "chatcmpl-1".into(), created: 1, model: "e".into() }
}

fn run(fake: &Fake, ens: &Ensemble) -> Result<Reply, N1Error> {
    block_on(complete(fake, ens, &request(false), &ids()))
}

#[test]
fn summary_sees_every_successful_answer_and_the_conversation() {
    let fake = Fake::default().script("b", &[Step::Fail(400)]);
    let ens = ensemble(&["a", "b", "c"], &["s"]);
    let reply = run(&fake, &ens).unwrap();
    let bodies = fake.bodies.borrow();
    let (name, summary) = bodies.last().unwrap();
    assert_eq!(name, "s");
    let system = summary["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("answer of a") && system.contains("answer of c"));
    assert!(!system.contains("answer of b"));
    assert_eq!(summary["messages"][1]["content"], "2+2?");
    assert_eq!(reply.panel_ok, 2);
    assert!(reply.degraded);
    // 2 panel answers + summary, 15 tokens each.
    assert_eq!(reply.body["usage"]["total_tokens"], 45);
    assert_eq!(reply.body["n1"]["panel"][1]["status"], "error");
    assert_eq!(reply.body["n1"]["panel"][1]["error"]["status"], 400);
}

#[test]
fn all_panel_failed_is_a_502_listing_each_model() {
    let fake = Fake::default().script("a", &[Step::Fail(401)]).script("b", &[Step::Fail(404)]);
    let ens = ensemble(&["a", "b"], &["s"]);
    let err = run(&fake, &ens).err().unwrap();
    assert_eq!(err.status(), 502);
    let msg = err.message();
    assert!(msg.contains("a (HTTP 401)") && msg.contains("b (HTTP 404)"), "{msg}");
    assert!(!fake.called("s"), "no summary call");
}

#[test]
fn never_more_than_six_calls_in_flight() {
    let fake = Fake::default();
    let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let reply = run(&fake, &ensemble(&refs, &["s"])).unwrap();
    assert_eq!(reply.panel_ok, 12);
    assert_eq!(fake.max_in_flight.get(), MAX_IN_FLIGHT);
}

#[test]
fn transient_failures_are_retried_with_backoff() {
    let fake = Fake::default().script("a", &[Step::Fail(500), Step::Network, Step::Answer("third time")]);
    let reply = run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    assert_eq!(fake.attempts_of("a"), 3);
    assert_eq!(reply.body["n1"]["panel"][0]["attempts"], 3);
    assert_eq!(reply.body["n1"]["panel"][0]["status"], "ok");
    // Backoff with r = 0.5: 375 ms, then 750 ms.
    let sleeps = fake.sleeps.borrow();
    assert!(sleeps.contains(&375) && sleeps.contains(&750), "{sleeps:?}");
}

#[test]
fn other_4xx_are_not_retried_and_retries_are_bounded() {
    let fake = Fake::default().script("a", &[Step::Fail(400)]).script("b", &[Step::Fail(503)]);
    let ens = ensemble_with(&["a", "b", "c"], &["s"], json!({}));
    let reply = run(&fake, &ens).unwrap();
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(fake.attempts_of("b"), 1 + crate::retry::DEFAULT_MAX_RETRIES as usize);
    assert_eq!(reply.panel_ok, 1);
}

#[test]
fn retry_after_is_honoured() {
    let fake = Fake::default().script("a", &[Step::FailRetryAfter(429, 1200), Step::Answer("")]);
    run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    assert!(fake.sleeps.borrow().contains(&1200));
    assert_eq!(fake.attempts_of("a"), 2);
}

#[test]
fn a_retry_that_would_miss_the_deadline_is_not_made() {
    let fake = Fake::default().script("a", &[Step::FailRetryAfter(429, 15_000), Step::Answer("")]).script("b", &[Step::Answer("")]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"panel_timeout_ms": 5000}));
    let reply = run(&fake, &ens).unwrap();
    assert_eq!(fake.attempts_of("a"), 1);
    assert_eq!(reply.body["n1"]["panel"][0]["error"]["status"], 429);
}

#[test]
fn panel_timeout_drops_stragglers_and_synthesizes_the_rest() {
    let fake = Fake::default().script("slow", &[Step::Slow(5_000.0)]);
    let ens = ensemble_with(&["fast", "slow"], &["s"], json!({"panel_timeout_ms": 1000}));
    let reply = run(&fake, &ens).unwrap();
    assert_eq!(reply.body["n1"]["panel"][1]["status"], "timeout");
    assert_eq!(reply.body["n1"]["panel_end"], "timeout");
    assert_eq!(reply.panel_ok, 1);
    assert!(fake.aborts.get() >= 1, "stragglers aborted");
    assert!(fake.clock.get() < 2000.0, "did not wait for the straggler: {}", fake.clock.get());
}

#[test]
fn quorum_starts_synthesis_early_and_cancels_the_rest() {
    let fake = Fake::default().script("c", &[Step::Hang]);
    let ens = ensemble_with(&["a", "b", "c"], &["s"], json!({"quorum": 2}));
    let reply = run(&fake, &ens).unwrap();
    assert_eq!(reply.body["n1"]["panel"][2]["status"], "cancelled");
    assert_eq!(reply.body["n1"]["panel_end"], "quorum");
    assert_eq!(fake.aborts.get(), 1);
    assert!(fake.clock.get() < 1000.0);
}

#[test]
fn min_panel_is_enforced() {
    let fake = Fake::default().script("b", &[Step::Fail(400)]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"min_panel": 2}));
    let err = run(&fake, &ens).err().unwrap();
    assert!(matches!(err, N1Error::PanelFailed { answered: 1, needed: 2, .. }));
    assert!(!fake.called("s"));
}

#[test]
fn summary_falls_back_to_the_next_model() {
    let fake = Fake::default().script("s1", &[Step::Fail(400)]);
    let reply = run(&fake, &ensemble(&["a"], &["s1", "s2"])).unwrap();
    assert_eq!(reply.body["n1"]["summary"]["model"], "s2");
    assert_eq!(reply.body["n1"]["summary"]["failed"][0]["model"], "s1");
}

#[test]
fn best_panel_answer_when_every_summary_fails() {
    let fake = Fake::default().script("s", &[Step::Fail(400)]).script("a", &[Step::Fail(400)]).script("b", &[Step::Answer("B SAYS")]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"on_summary_failure": "best_panel_answer"}));
    let reply = run(&fake, &ens).unwrap();
    assert!(reply.fallback && reply.degraded);
    assert_eq!(reply.body["choices"][0]["message"]["content"], "B SAYS");
    assert_eq!(reply.body["n1"]["summary"]["status"], "best_panel_answer");
    assert_eq!(reply.body["n1"]["summary"]["model"], "b");
    // Without the option it is an error.
    let fake = Fake::default().script("s", &[Step::Fail(400)]);
    assert_eq!(run(&fake, &ensemble(&["a"], &["s"])).err().unwrap().status(), 502);
}

#[test]
fn request_ceiling_ends_a_hung_request() {
    let fake = Fake::default().script("s", &[Step::Hang]);
    let ens = ensemble_with(&["a"], &["s"], json!({"request_timeout_ms": 3000}));
    let err = run(&fake, &ens).err().unwrap();
    assert_eq!(err.status(), 504);
    assert!(fake.clock.get() <= 3100.0);
}

const GOOD_STREAM: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n";

#[test]
fn stream_relays_summary_and_sums_usage() {
    let mut fake = Fake::default();
    fake.streams.insert("s".into(), vec![Ok(GOOD_STREAM.to_vec())]);
    let mut sink = VecSink::new();
    block_on(stream(&fake, &ensemble(&["a", "b"], &["s"]), &request(true), &ids(), &mut sink));
    let ev = sink.events();
    let first: Value = serde_json::from_str(&ev[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert!(ev[1].contains("\"content\":\"4\""));
    let usage: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 32);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    // No progress events unless asked for.
    assert!(!sink.events().iter().any(|e| e.contains("n1_progress")));
}

#[test]
fn progress_events_when_asked_for() {
    let mut fake = Fake::default().script("b", &[Step::Fail(400)]);
    fake.streams.insert("s".into(), vec![Ok(GOOD_STREAM.to_vec())]);
    let mut req = request(true);
    req.progress = true;
    let mut sink = VecSink::new();
    block_on(stream(&fake, &ensemble(&["a", "b"], &["s"]), &req, &ids(), &mut sink));
    let progress: Vec<Value> = sink
        .events()
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v.get("n1_progress").is_some())
        .collect();
    let kinds: Vec<&str> = progress.iter().map(|p| p["n1_progress"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["panel_start", "panel_member", "panel_member", "panel_done", "summary_start"]);
    for p in &progress {
        assert_eq!(p["choices"][0]["delta"]["content"], "", "progress never adds answer text");
    }
    let a = progress.iter().find(|p| p["n1_progress"]["model"] == "a").unwrap();
    assert_eq!(a["n1_progress"]["content"], "answer of a");
    let b = progress.iter().find(|p| p["n1_progress"]["model"] == "b").unwrap();
    assert_eq!(b["n1_progress"]["status"], "error");
}

#[test]
fn broken_summary_stream_after_content_ends_with_error_then_done() {
    let mut fake = Fake::default();
    fake.streams.insert("s".into(), vec![Ok(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}]}\n\n".to_vec()), Err("connection reset".into())]);
    fake.streams.insert("s2".into(), vec![Ok(GOOD_STREAM.to_vec())]);
    let mut sink = VecSink::new();
    block_on(stream(&fake, &ensemble(&["a"], &["s", "s2"]), &request(true), &ids(), &mut sink));
    let ev = sink.events();
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "stream_error");
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert!(!fake.called("s2"), "no fallback once the answer has started");
    assert!(fake.aborts.get() >= 1);
}

#[test]
fn summary_stream_failing_before_its_first_token_falls_back() {
    let mut fake = Fake::default();
    fake.streams.insert("s1".into(), vec![Ok(b"data: ###\n\n".to_vec())]);
    fake.streams.insert("s2".into(), vec![Ok(GOOD_STREAM.to_vec())]);
    let mut sink = VecSink::new();
    block_on(stream(&fake, &ensemble(&["a"], &["s0", "s1", "s2"]), &request(true), &ids(), &mut sink));
    let ev = sink.events();
    assert!(ev.iter().filter_map(|e| serde_json::from_str::<Value>(e).ok()).all(|v| v.get("error").is_none()), "{ev:?}");
    let fin: Value = serde_json::from_str(ev.iter().find(|e| e.contains("finish_reason\":\"stop")).unwrap()).unwrap();
    assert_eq!(fin["n1"]["summary"]["model"], "s2");
    let failed: Vec<&str> = fin["n1"]["summary"]["failed"].as_array().unwrap().iter().map(|f| f["model"].as_str().unwrap()).collect();
    assert_eq!(failed, ["s0", "s1"]);
}

#[test]
fn stream_with_failed_panel_sends_error_event() {
    let fake = Fake::default().script("a", &[Step::Fail(400)]);
    let mut sink = VecSink::new();
    block_on(stream(&fake, &ensemble(&["a"], &["s"]), &request(true), &ids(), &mut sink));
    let ev = sink.events();
    assert_eq!(ev.len(), 3);
    let err: Value = serde_json::from_str(&ev[1]).unwrap();
    assert_eq!(err["error"]["code"], "panel_failed");
    assert_eq!(ev[2], "[DONE]");
}

#[test]
fn the_panel_phase_arms_one_timer_not_one_per_answer() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut fake = Fake::default();
    for (i, n) in names.iter().enumerate() {
        fake = fake.script(n, &[Step::Slow(10.0 * (i + 1) as f64)]);
    }
    let ens = ensemble(&names, &["s"]);
    let reply = block_on(complete(&fake, &ens, &request(false), &ids())).unwrap();
    assert_eq!(reply.panel_ok, 6);
    // Slow answers wait through `sleep` only inside the fake's models, so every
    // recorded sleep is one of the policy's timers.
    assert_eq!(fake.sleeps.borrow().len(), 1, "{:?}", fake.sleeps.borrow());
}

#[test]
fn keep_alives_while_a_slow_panel_thinks() {
    let mut fake = Fake::default().script("a", &[Step::Slow(12_000.0)]);
    fake.streams.insert("s".into(), vec![Ok(GOOD_STREAM.to_vec())]);
    let mut ens = ensemble_with(&["a"], &["s"], json!({"keep_alive_ms": 5000}));
    ens.panel[0].timeout_ms = Some(60_000);
    let mut sink = VecSink::new();
    block_on(stream(&fake, &ens, &request(true), &ids(), &mut sink));
    let text = String::from_utf8(sink.bytes.clone()).unwrap();
    // One every keep_alive_ms / 4 (1250 ms) over the panel's 12 s.
    assert_eq!(text.matches(": keep-alive").count(), 9, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn client_leaving_aborts_upstream_calls() {
    let fake = Fake::default().script("a", &[Step::Slow(12_000.0)]);
    let mut ens = ensemble_with(&["a"], &["s"], json!({"keep_alive_ms": 5000}));
    ens.panel[0].timeout_ms = Some(60_000);
    let mut sink = VecSink::new();
    sink.leave_after = Some(1); // the role chunk goes out; the first keep-alive fails
    block_on(stream(&fake, &ens, &request(true), &ids(), &mut sink));
    assert_eq!(fake.aborts.get(), 1);
    assert!(!fake.called("s"));
}

#[test]
fn two_layers_feed_layer_one_answers_to_layer_two() {
    let fake = Fake::default().script("a", &[Step::Answer("A1"), Step::Answer("A2")]).script("b", &[Step::Answer("B1"), Step::Answer("B2")]);
    let ens = ensemble_with(&["a", "b"], &["s"], json!({"layers": 2}));
    let reply = run(&fake, &ens).unwrap();
    let bodies = fake.bodies.borrow();
    let layer2: Vec<&Value> = bodies.iter().filter(|(m, _)| m == "a" || m == "b").map(|(_, b)| b).skip(2).collect();
    assert_eq!(layer2.len(), 2);
    for b in layer2 {
        let sys = b["messages"][0]["content"].as_str().unwrap();
        assert!(sys.starts_with(crate::prompt::LAYER_PROMPT) && sys.contains("A1") && sys.contains("B1"), "{sys}");
        assert_eq!(b["messages"][1]["content"], "2+2?");
    }
    let summary = &bodies.last().unwrap().1["messages"][0]["content"];
    assert!(summary.as_str().unwrap().contains("A2") && !summary.as_str().unwrap().contains("A1"));
    // 4 panel calls + summary.
    assert_eq!(reply.body["usage"]["total_tokens"], 75);
    assert_eq!(reply.body["n1"]["layers"].as_array().unwrap().len(), 2);
}

#[test]
fn keep_history_false_sends_only_the_last_turn_to_the_summary() {
    let fake = Fake::default();
    let ens = ensemble_with(&["a"], &["s"], json!({"keep_history": false}));
    let body = json!({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "old"}, {"role": "assistant", "content": "r"}, {"role": "user", "content": "new"}]});
    let req = parse_chat_request(body.to_string().as_bytes()).unwrap();
    block_on(complete(&fake, &ens, &req, &ids())).unwrap();
    let bodies = fake.bodies.borrow();
    let (_, s) = bodies.last().unwrap();
    let rest: Vec<&str> = s["messages"].as_array().unwrap()[1..].iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(rest, ["S", "new"]);
    // The panel still sees everything.
    assert_eq!(bodies[0].1["messages"].as_array().unwrap().len(), 4);
}
