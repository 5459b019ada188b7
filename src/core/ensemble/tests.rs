//! The ensemble policy against scripted fake models on a virtual clock: both
//! output modes, the chat dialect's encoder in front of a recording sink.

use super::report::{MemberStatus, PanelEnd, SummaryStatus};
use super::*;
use crate::core::config::Route;
use crate::core::config::{parse_config, ConfigOptions, Ensemble, Provider};
use crate::core::dialects::chat::{self, ChatStream};
use crate::core::dialects::ReplyIds;
use crate::core::error::FailureKind;
use futures::executor::block_on;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::Poll;

/// One scripted attempt of a model (for a streaming summary: of opening its stream).
#[derive(Clone)]
enum Step {
    /// Answer at once; `""`: "answer of <model>".
    Answer(&'static str),
    /// Answer after this many virtual ms.
    Slow(f64),
    Fail(u16),
    FailRetryAfter(u16, u64),
    Network,
    /// Never answers (until the attempt's timeout).
    Hang,
    /// A 2xx reply with this body, verbatim.
    Raw(&'static str),
}

/// One piece of a scripted upstream stream.
#[derive(Clone)]
enum Piece {
    Data(Vec<u8>),
    /// The connection breaks with this error.
    Broken(&'static str),
    /// Silence for this many virtual ms before the next piece.
    Pause(f64),
    /// Silence for ever.
    Stall,
}

fn data(s: &str) -> Piece {
    Piece::Data(s.as_bytes().to_vec())
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

/// Wait until virtual time `t`. Every waiter moves the clock 1 ms per round,
/// so time passes while anyone waits, a little faster the more wait.
async fn wait_until(clock: &Cell<f64>, t: f64) {
    while clock.get() < t {
        clock.set(clock.get() + 1.0);
        yield_now().await;
    }
}

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, String>>>>;

fn body_stream(pieces: Vec<Piece>, clock: Rc<Cell<f64>>) -> Body {
    Box::pin(futures::stream::unfold((pieces.into_iter(), clock), |(mut it, clock)| async move {
        loop {
            match it.next()? {
                Piece::Data(d) => return Some((Ok(d), (it, clock))),
                Piece::Broken(e) => return Some((Err(e.to_owned()), (it, clock))),
                Piece::Pause(ms) => {
                    let t = clock.get() + ms;
                    wait_until(&clock, t).await;
                }
                Piece::Stall => futures::future::pending::<()>().await,
            }
        }
    }))
}

#[derive(Default)]
struct Fake {
    scripts: HashMap<String, Vec<Step>>,
    streams: HashMap<String, Vec<Piece>>,
    attempts: RefCell<HashMap<String, usize>>,
    bodies: RefCell<Vec<(String, Value)>>,
    /// The timeout each attempt was given.
    timeouts: RefCell<Vec<(String, u64)>>,
    clock: Rc<Cell<f64>>,
    sleeps: RefCell<Vec<u64>>,
    aborts: Cell<usize>,
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
    secrets: Secrets,
}

impl Fake {
    fn script(mut self, model: &str, steps: &[Step]) -> Self {
        self.scripts.insert(model.into(), steps.to_vec());
        self
    }
    fn stream(mut self, model: &str, pieces: &[Piece]) -> Self {
        self.streams.insert(model.into(), pieces.to_vec());
        self
    }
    fn attempts_of(&self, model: &str) -> usize {
        self.attempts.borrow().get(model).copied().unwrap_or(0)
    }
    fn called(&self, model: &str) -> bool {
        self.attempts_of(model) > 0
    }
    fn now(&self) -> f64 {
        self.clock.get()
    }
    /// Record the call; the step scripted for this attempt.
    fn begin(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Option<Step> {
        self.bodies.borrow_mut().push((m.model.clone(), serde_json::from_str(body).expect("upstream bodies are JSON")));
        self.timeouts.borrow_mut().push((m.model.clone(), timeout_ms));
        let n = {
            let mut a = self.attempts.borrow_mut();
            let e = a.entry(m.model.clone()).or_default();
            *e += 1;
            *e - 1
        };
        let steps = self.scripts.get(&m.model)?;
        steps.get(n).or(steps.last()).cloned()
    }
    /// The bodies sent to `model`, in order.
    fn bodies_of(&self, model: &str) -> Vec<Value> {
        self.bodies.borrow().iter().filter(|(m, _)| m == model).map(|(_, b)| b.clone()).collect()
    }
}

/// A whole answer as a stream in the model's provider's format, 10 + 5 tokens.
fn stream_text(m: &ModelSpec, text: &str) -> String {
    let t = serde_json::to_string(text).unwrap();
    match m.provider {
        Provider::Anthropic => format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"usage\":{{\"input_tokens\":10}}}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{t}}}}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":5}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        ),
        _ => format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{t}}}}}]}}\n\n\
             data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}}}}\n\n\
             data: [DONE]\n\n"
        ),
    }
}

/// A 2xx reply in the model's provider's format, 10 + 5 tokens.
fn reply_text(m: &ModelSpec, text: &str) -> String {
    match m.provider {
        Provider::Anthropic => json!({"content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5}}),
        _ => json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }),
    }
    .to_string()
}


impl Runtime for Fake {
    type Body = Body;

    async fn complete(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<String, Failure> {
        let step = self.begin(m, body, timeout_ms).unwrap_or(Step::Answer(""));
        self.in_flight.set(self.in_flight.get() + 1);
        self.max_in_flight.set(self.max_in_flight.get().max(self.in_flight.get()));
        yield_now().await;
        let start = self.now();
        let limit = start + timeout_ms as f64;
        let result = match step {
            Step::Slow(ms) if ms >= timeout_ms as f64 => {
                wait_until(&self.clock, limit).await;
                Err(Failure::timeout(&m.model, "too slow"))
            }
            Step::Slow(ms) => {
                wait_until(&self.clock, start + ms).await;
                Ok(reply_text(m, &format!("answer of {}", m.model)))
            }
            Step::Hang => {
                wait_until(&self.clock, limit).await;
                Err(Failure::timeout(&m.model, "hung"))
            }
            Step::Answer("") => Ok(reply_text(m, &format!("answer of {}", m.model))),
            Step::Answer(t) => Ok(reply_text(m, t)),
            Step::Raw(t) => Ok(t.to_owned()),
            Step::Fail(s) => Err(Failure::new(&m.model, Some(s), FailureKind::Error, "scripted")),
            Step::FailRetryAfter(s, ra) => Err(Failure { retry_after_ms: Some(ra), ..Failure::new(&m.model, Some(s), FailureKind::Error, "slow down") }),
            Step::Network => Err(Failure::error(&m.model, "connection reset")),
        };
        self.in_flight.set(self.in_flight.get() - 1);
        result
    }

    /// A model with scripted pieces streams them (after any failing steps);
    /// any other answers its step as a stream in its provider's format. An
    /// attempt is in flight until its stream opens.
    async fn open_stream(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Self::Body, Failure> {
        let step = self.begin(m, body, timeout_ms);
        let failed = match &step {
            Some(Step::Fail(s)) => Some(Failure::new(&m.model, Some(*s), FailureKind::Error, "scripted")),
            Some(Step::FailRetryAfter(s, ra)) => Some(Failure { retry_after_ms: Some(*ra), ..Failure::new(&m.model, Some(*s), FailureKind::Error, "slow down") }),
            Some(Step::Network) => Some(Failure::error(&m.model, "connection reset")),
            _ => None,
        };
        if let Some(f) = failed {
            return Err(f);
        }
        if let Some(pieces) = self.streams.get(&m.model) {
            return Ok(body_stream(pieces.clone(), self.clock.clone()));
        }
        self.in_flight.set(self.in_flight.get() + 1);
        self.max_in_flight.set(self.max_in_flight.get().max(self.in_flight.get()));
        yield_now().await;
        let start = self.now();
        let limit = start + timeout_ms as f64;
        let answer = |text: &str| Ok(body_stream(vec![data(&stream_text(m, text))], self.clock.clone()));
        let result = match step.unwrap_or(Step::Answer("")) {
            Step::Slow(ms) if ms >= timeout_ms as f64 => {
                wait_until(&self.clock, limit).await;
                Err(Failure::timeout(&m.model, "too slow"))
            }
            Step::Slow(ms) => {
                wait_until(&self.clock, start + ms).await;
                answer(&format!("answer of {}", m.model))
            }
            Step::Hang => {
                wait_until(&self.clock, limit).await;
                Err(Failure::timeout(&m.model, "hung"))
            }
            Step::Answer("") => answer(&format!("answer of {}", m.model)),
            Step::Answer(t) => answer(t),
            // The raw bytes, as the stream's whole body.
            Step::Raw(t) => Ok(body_stream(vec![data(t)], self.clock.clone())),
            Step::Fail(_) | Step::FailRetryAfter(..) | Step::Network => unreachable!("handled above"),
        };
        self.in_flight.set(self.in_flight.get() - 1);
        result
    }

    fn now_ms(&self) -> f64 {
        self.clock.get()
    }
    async fn sleep(&self, ms: u64) {
        self.sleeps.borrow_mut().push(ms);
        wait_until(&self.clock, self.clock.get() + ms as f64).await
    }
    fn random(&self) -> f64 {
        0.5
    }
    fn abort_in_flight(&self) {
        self.aborts.set(self.aborts.get() + 1);
    }
    fn secrets(&self) -> &Secrets {
        &self.secrets
    }
}

struct VecSink {
    bytes: Vec<u8>,
    /// The client leaves after this many sends (a send then fails).
    leave_after: Option<usize>,
    sends: usize,
    /// The client is seen leaving (`gone`) once the virtual clock reaches this.
    gone_at: Option<(Rc<Cell<f64>>, f64)>,
}

impl VecSink {
    fn new() -> Self {
        VecSink { bytes: vec![], leave_after: None, sends: 0, gone_at: None }
    }
    fn text(&self) -> String {
        String::from_utf8(self.bytes.clone()).unwrap()
    }
    /// The data of every event.
    fn events(&self) -> Vec<String> {
        let mut p = crate::core::sse::Parser::new();
        let mut ev = Vec::new();
        p.push(&self.bytes, &mut ev).unwrap();
        p.finish(&mut ev);
        ev.into_iter().map(|e| e.data).collect()
    }
    /// Every event that is JSON.
    fn json(&self) -> Vec<Value> {
        self.events().iter().filter_map(|e| serde_json::from_str(e).ok()).collect()
    }
    /// The chunk that carries `n1`.
    fn finish_chunk(&self) -> Value {
        self.json().into_iter().find(|v| v.get("n1").is_some()).unwrap_or_else(|| panic!("no finish chunk: {}", self.text()))
    }
    /// The answer text the client assembles.
    fn content(&self) -> String {
        self.json().iter().filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned)).collect()
    }
}

impl Sink for VecSink {
    fn send(&mut self, bytes: Vec<u8>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ()>> + '_>> {
        let r = if self.leave_after.is_some_and(|n| self.sends >= n) {
            Err(())
        } else {
            self.sends += 1;
            self.bytes.extend_from_slice(&bytes);
            Ok(())
        };
        Box::pin(std::future::ready(r))
    }
    fn gone(&self) -> Gone {
        match &self.gone_at {
            None => Box::pin(futures::future::pending()),
            Some((clock, t)) => {
                let (clock, t) = (clock.clone(), *t);
                Box::pin(futures::future::poll_fn(move |cx| {
                    if clock.get() >= t {
                        Poll::Ready(())
                    } else {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }))
            }
        }
    }
}

fn model(name: &str) -> Value {
    json!({"endpoint": "https://x.test/v1", "model": name, "timeout_ms": 10_000})
}

fn ensemble_of(panel: Vec<Value>, summary: Vec<Value>, policy: Value) -> Ensemble {
    let mut e = json!({"panel": panel, "summary": summary});
    e.as_object_mut().unwrap().extend(policy.as_object().unwrap().clone());
    parse_config(&json!({"ensembles": {"e": e}}).to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0)
}

fn ensemble_with(panel: &[&str], summary: &[&str], policy: Value) -> Ensemble {
    ensemble_of(panel.iter().map(|n| model(n)).collect(), summary.iter().map(|n| model(n)).collect(), policy)
}

fn ensemble(panel: &[&str], summary: &[&str]) -> Ensemble {
    ensemble_with(panel, summary, json!({}))
}

fn decode(v: Value) -> Request {
    chat::decode(v.to_string().as_bytes()).unwrap()
}

fn request(stream: bool) -> Request {
    decode(json!({"model": "e", "stream": stream, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "2+2?"}]}))
}

fn ids() -> ReplyIds {
    ReplyIds { id: "chatcmpl-1".into(), created: 1, model: "e".into() }
}

fn complete_with(fake: &Fake, ens: &Ensemble, req: &Request) -> Result<Answer, N1Error> {
    block_on(complete(fake, &ens.lineup(false, Route::Ensemble).unwrap(), req))
}

fn run(fake: &Fake, ens: &Ensemble) -> Result<Answer, N1Error> {
    complete_with(fake, ens, &request(false))
}

/// The chat completion object the client gets.
fn body_of(a: &Answer) -> Value {
    serde_json::from_slice(&chat::reply(&ids(), a)).unwrap()
}

fn stream_with(fake: &Fake, ens: &Ensemble, req: &Request, sink: &mut VecSink, progress: bool) {
    let ids = ids();
    let mut enc = ChatStream::new(&ids, req.include_usage);
    let mut out = Out::new(&mut enc, sink, progress);
    block_on(stream(fake, &ens.lineup(false, Route::Ensemble).unwrap(), req, &mut out));
}

fn run_stream(fake: &Fake, ens: &Ensemble) -> VecSink {
    let mut sink = VecSink::new();
    stream_with(fake, ens, &request(true), &mut sink, false);
    sink
}

const GOOD_STREAM: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n";
const CONTENT_ONLY: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}]}\n\n";

// ---- the panel, non-streaming

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

// ---- the summary, non-streaming

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

// ---- streams

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

/// A summary model that ends with `finish_reason: "length"` and no content
/// (a reasoning model that spent its budget thinking), then breaks before
/// `[DONE]`, hands over to the next model; the encoder keeps the first
/// model's finish reason (`ChatStream::finish` is only ever overwritten by a
/// later `Finish` event), so the second model's complete answer is reported
/// as cut short.
#[test]
fn a_failed_early_models_finish_reason_does_not_leak_into_the_fallback() {
    let fake = Fake::default()
        .stream("s1", &[data("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"), Piece::Broken("reset")])
        .stream("s2", &[data(CONTENT_ONLY), data("data: [DONE]\n\n")]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s1", "s2"]));
    assert_eq!(sink.content(), "4");
    let fin = sink.finish_chunk();
    assert_eq!(fin["n1"]["summary"]["model"], "s2");
    assert_eq!(fin["choices"][0]["finish_reason"], "stop", "{fin}");
}

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
