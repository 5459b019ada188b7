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


// ---- the summary, non-streaming

// ---- streams

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

mod panel;
mod summary;
mod stream;
mod streaming;
