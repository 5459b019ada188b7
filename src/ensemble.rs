//! The ensemble policy: fan the conversation out to the panel (at most
//! `MAX_IN_FLIGHT` calls open at once), then have the summary model synthesize
//! the answers, in either output mode. Everything that touches the network or
//! the clock goes through `Runtime`, so the whole flow is tested on the host
//! with scripted fake models.

use std::pin::Pin;

use futures::future::{select, Either};
use futures::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};

use crate::config::{Ensemble, ModelSpec};
use crate::error::{Failure, N1Error};
use crate::prompt;
use crate::relay::Relay;
use crate::request::{ChatRequest, Messages, Purpose, UpstreamBody};
use crate::response::{self, Completion, MemberReport, N1Meta, ReplyIds, SummaryReport};
use crate::sse;
use crate::usage::{self, Usage};

/// Cloudflare lets one request hold 6 outgoing connections; a 7th would wait
/// for a free one anyway, so we queue it ourselves.
pub const MAX_IN_FLIGHT: usize = 6;
/// Silence on a stream longer than this gets an SSE comment, so proxies and
/// browsers do not close an idle connection while the panel thinks.
pub const KEEP_ALIVE_MS: u64 = 5_000;

/// What the ensemble needs from the outside world.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    type Body: Stream<Item = Result<Vec<u8>, String>> + Unpin;
    /// One non-streaming chat completion call.
    async fn complete(&self, model: &ModelSpec, body: String) -> Result<Completion, Failure>;
    /// A streaming call; resolves once the upstream answered 2xx.
    async fn open_stream(&self, model: &ModelSpec, body: String) -> Result<Self::Body, Failure>;
    fn now_ms(&self) -> f64;
    async fn sleep(&self, ms: u64);
    /// Secret values in use, scrubbed from any upstream text we repeat.
    fn secrets(&self) -> Vec<String>;
}

/// Where a streamed reply goes. `Err` means the client is gone.
#[allow(async_fn_in_trait)]
pub trait Sink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), ()>;
}

/// One panel member's call, as it finished.
pub struct Member {
    pub index: usize,
    pub latency_ms: f64,
    pub outcome: Result<Completion, Failure>,
}

/// The panel's calls as a stream that yields each member when it finishes.
pub fn panel<'a, R: Runtime>(
    rt: &'a R,
    ens: &'a Ensemble,
    req: &'a ChatRequest,
) -> Pin<Box<dyn Stream<Item = Member> + 'a>> {
    let calls = ens.panel.iter().enumerate().map(move |(index, m)| async move {
        let body = UpstreamBody {
            client: &req.body,
            model: &m.model,
            messages: Messages::Client(req.messages()),
            stream: false,
            purpose: Purpose::Panel,
            default_temperature: m.temperature,
        }
        .to_json();
        // Timed from when the call starts, not from when it was queued.
        let t0 = rt.now_ms();
        let outcome = rt.complete(m, body).await;
        Member { index, latency_ms: rt.now_ms() - t0, outcome }
    });
    Box::pin(stream::iter(calls).buffer_unordered(MAX_IN_FLIGHT))
}

/// The panel's results in panel order.
pub struct PanelResult {
    pub reports: Vec<MemberReport>,
    pub answers: Vec<String>,
    pub usage: Usage,
    pub failures: Vec<Failure>,
}

impl PanelResult {
    pub fn new(ens: &Ensemble, mut members: Vec<Member>) -> Self {
        members.sort_by_key(|m| m.index);
        let mut r = PanelResult { reports: vec![], answers: vec![], usage: Usage::default(), failures: vec![] };
        for m in members {
            let model = ens.panel[m.index].model.clone();
            let latency_ms = m.latency_ms.max(0.0).round() as u64;
            match m.outcome {
                Ok(c) => {
                    r.answers.push(c.text());
                    if let Some(u) = &c.usage {
                        r.usage.add(u);
                    }
                    r.reports.push(MemberReport { model, status: "ok", latency_ms, usage: c.usage, error: None });
                }
                Err(f) => {
                    r.failures.push(f.clone());
                    r.reports.push(MemberReport { model, status: f.kind, latency_ms, usage: None, error: Some(f) });
                }
            }
        }
        r
    }

    fn check(&self, ens: &Ensemble) -> Result<(), N1Error> {
        let needed = 1;
        if !ens.panel.is_empty() && self.answers.len() < needed {
            return Err(N1Error::PanelFailed { failures: self.failures.clone(), answered: self.answers.len(), needed });
        }
        Ok(())
    }

    fn meta(&self, ens: &Ensemble, summary: SummaryReport) -> N1Meta {
        N1Meta {
            ensemble: ens.name.clone(),
            panel: self.reports.clone(),
            panel_ok: self.answers.len(),
            panel_total: ens.panel.len(),
            degraded: self.answers.len() < ens.panel.len() || summary.status != "ok",
            summary,
        }
    }
}

/// The summary request body; with no panel (direct mode) the conversation goes as is.
fn summary_body(ens: &Ensemble, req: &ChatRequest, model: &ModelSpec, stream: bool, system: &str) -> String {
    let messages = if ens.panel.is_empty() {
        Messages::Client(req.messages())
    } else {
        Messages::WithSystem { system, rest: req.messages() }
    };
    UpstreamBody {
        client: &req.body,
        model: &model.model,
        messages,
        stream,
        purpose: Purpose::Summary,
        default_temperature: model.temperature,
    }
    .to_json()
}

fn synthesis_text(ens: &Ensemble, panel: &PanelResult) -> String {
    let answers: Vec<&str> = panel.answers.iter().map(String::as_str).collect();
    prompt::synthesis_system_message(ens.synthesis_prompt.as_deref(), &answers)
}

/// A finished non-streaming reply.
pub struct Reply {
    pub body: Value,
    pub panel_ok: usize,
    pub panel_total: usize,
    pub degraded: bool,
}

/// Non-streaming: panel, then summary (falling back along `ens.summary`).
pub async fn complete<R: Runtime>(rt: &R, ens: &Ensemble, req: &ChatRequest, ids: &ReplyIds) -> Result<Reply, N1Error> {
    let members: Vec<Member> = panel(rt, ens, req).collect().await;
    let panel = PanelResult::new(ens, members);
    panel.check(ens)?;
    let system = synthesis_text(ens, &panel);
    let mut failed = Vec::new();
    for model in &ens.summary {
        let body = summary_body(ens, req, model, false, &system);
        let t0 = rt.now_ms();
        match rt.complete(model, body).await {
            Ok(c) => {
                let report = SummaryReport {
                    model: model.model.clone(),
                    status: "ok",
                    latency_ms: (rt.now_ms() - t0).max(0.0).round() as u64,
                    usage: c.usage,
                    failed,
                };
                let total = usage::sum(panel.reports.iter().filter_map(|r| r.usage.as_ref()).chain(c.usage.as_ref()));
                let meta = panel.meta(ens, report);
                return Ok(Reply {
                    body: response::chat_completion(ids, &c, &total, &meta),
                    panel_ok: meta.panel_ok,
                    panel_total: meta.panel_total,
                    degraded: meta.degraded,
                });
            }
            Err(f) => failed.push(f),
        }
    }
    Err(N1Error::SummaryFailed(failed))
}

/// Streaming: the role chunk goes out at once, keep-alives while the panel
/// runs, then the summary stream relayed chunk by chunk. Every path ends with
/// `[DONE]`, after an error event if something failed.
pub async fn stream<R: Runtime, S: Sink>(rt: &R, ens: &Ensemble, req: &ChatRequest, ids: &ReplyIds, out: &mut S) {
    let mut first = Vec::new();
    sse::encode_data(&mut first, &response::chunk(ids, json!({"role": "assistant", "content": ""}), None).to_string());
    if out.send(first).await.is_err() {
        return;
    }

    let mut calls = panel(rt, ens, req);
    let mut members = Vec::with_capacity(ens.panel.len());
    loop {
        let tick = Box::pin(rt.sleep(KEEP_ALIVE_MS));
        match select(calls.next(), tick).await {
            Either::Left((Some(m), _)) => members.push(m),
            Either::Left((None, _)) => break,
            Either::Right(_) => {
                if out.send(sse::KEEP_ALIVE.to_vec()).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(calls);
    let panel = PanelResult::new(ens, members);
    if let Err(e) = panel.check(ens) {
        let _ = out.send(error_then_done(&e.body())).await;
        return;
    }

    let system = synthesis_text(ens, &panel);
    let mut failed = Vec::new();
    let mut opened = None;
    for model in &ens.summary {
        let body = summary_body(ens, req, model, true, &system);
        let t0 = rt.now_ms();
        match rt.open_stream(model, body).await {
            Ok(b) => {
                opened = Some((model, b, t0));
                break;
            }
            Err(f) => failed.push(f),
        }
    }
    let Some((model, mut body, t0)) = opened else {
        let _ = out.send(error_then_done(&N1Error::SummaryFailed(failed).body())).await;
        return;
    };

    let mut relay = Relay::new(ids.clone(), rt.secrets());
    let mut buf = Vec::new();
    let result = loop {
        match body.next().await {
            Some(Ok(bytes)) => {
                let r = relay.push(&bytes, &mut buf);
                if !buf.is_empty() && out.send(std::mem::take(&mut buf)).await.is_err() {
                    return;
                }
                if let Err(e) = r {
                    break Err(e.message());
                }
            }
            Some(Err(e)) => break Err(format!("The summary model's stream broke: {e}")),
            None => break relay.end(&mut buf).map_err(|e| e.message()),
        }
    };
    if let Err(message) = result {
        buf.extend_from_slice(&error_then_done(&response::error_event(&message, "upstream_error", "stream_error")));
        let _ = out.send(buf).await;
        return;
    }
    let report = SummaryReport {
        model: model.model.clone(),
        status: "ok",
        latency_ms: (rt.now_ms() - t0).max(0.0).round() as u64,
        usage: relay.usage(),
        failed,
    };
    let meta = panel.meta(ens, report);
    let total = req.include_usage.then(|| {
        let mut u = panel.usage;
        if let Some(s) = relay.usage() {
            u.add(&s);
        }
        u
    });
    relay.tail(&mut buf, &meta, total.as_ref());
    let _ = out.send(buf).await;
}

fn error_then_done(err: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    sse::encode_data(&mut b, &err.to_string());
    b.extend_from_slice(sse::DONE);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use crate::request::parse_chat_request;
    use futures::executor::block_on;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// Scripted fake models: a name maps to an answer or a failure.
    #[derive(Default)]
    struct Fake {
        answers: HashMap<String, Result<String, u16>>,
        stream: HashMap<String, Vec<Result<Vec<u8>, String>>>,
        bodies: RefCell<Vec<(String, Value)>>,
        in_flight: Cell<usize>,
        max_in_flight: Cell<usize>,
    }

    impl Runtime for Fake {
        type Body = futures::stream::Iter<std::vec::IntoIter<Result<Vec<u8>, String>>>;
        async fn complete(&self, m: &ModelSpec, body: String) -> Result<Completion, Failure> {
            self.bodies.borrow_mut().push((m.model.clone(), serde_json::from_str(&body).unwrap()));
            self.in_flight.set(self.in_flight.get() + 1);
            self.max_in_flight.set(self.max_in_flight.get().max(self.in_flight.get()));
            // Yield once so that every queued call gets started before any ends.
            futures::pending_once().await;
            self.in_flight.set(self.in_flight.get() - 1);
            match self.answers.get(&m.model).cloned().unwrap_or(Ok(format!("answer of {}", m.model))) {
                Ok(text) => Ok(Completion {
                    message: json!({"role": "assistant", "content": text}),
                    finish_reason: Some("stop".into()),
                    usage: Some(Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }),
                }),
                Err(status) => Err(Failure { model: m.model.clone(), status: Some(status), kind: "error", reason: "scripted".into() }),
            }
        }
        async fn open_stream(&self, m: &ModelSpec, body: String) -> Result<Self::Body, Failure> {
            self.bodies.borrow_mut().push((m.model.clone(), serde_json::from_str(&body).unwrap()));
            match self.stream.get(&m.model) {
                Some(chunks) => Ok(futures::stream::iter(chunks.clone())),
                None => Err(Failure { model: m.model.clone(), status: Some(503), kind: "error", reason: "down".into() }),
            }
        }
        fn now_ms(&self) -> f64 {
            0.0
        }
        async fn sleep(&self, _ms: u64) {
            futures::future::pending::<()>().await
        }
        fn secrets(&self) -> Vec<String> {
            vec![]
        }
    }

    mod futures {
        pub use ::futures::*;
        /// A future that is pending once, then ready.
        pub async fn pending_once() {
            let mut done = false;
            ::futures::future::poll_fn(|cx| {
                if done {
                    std::task::Poll::Ready(())
                } else {
                    done = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })
            .await
        }
    }

    struct VecSink(Vec<u8>);
    impl Sink for VecSink {
        async fn send(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
            self.0.extend_from_slice(&bytes);
            Ok(())
        }
    }

    fn ensemble(panel: &[&str], summary: &[&str]) -> Ensemble {
        let m = |n: &&str| json!({"endpoint": "https://x.test/v1", "model": n});
        let cfg = json!({"ensembles": {"e": {
            "panel": panel.iter().map(m).collect::<Vec<_>>(),
            "summary": summary.iter().map(m).collect::<Vec<_>>(),
        }}});
        parse_config(&cfg.to_string()).unwrap().ensembles.remove(0)
    }

    fn request(stream: bool) -> ChatRequest {
        parse_chat_request(json!({"model": "e", "stream": stream, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "2+2?"}]}).to_string().as_bytes()).unwrap()
    }

    fn ids() -> ReplyIds {
        ReplyIds { id: "chatcmpl-1".into(), created: 1, model: "e".into() }
    }

    #[test]
    fn summary_sees_every_successful_answer_and_the_conversation() {
        let mut fake = Fake::default();
        fake.answers.insert("b".into(), Err(500));
        let ens = ensemble(&["a", "b", "c"], &["s"]);
        let reply = block_on(complete(&fake, &ens, &request(false), &ids())).unwrap();
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
        assert_eq!(reply.body["n1"]["panel"][1]["error"]["status"], 500);
    }

    #[test]
    fn all_panel_failed_is_a_502_listing_each_model() {
        let mut fake = Fake::default();
        fake.answers.insert("a".into(), Err(500));
        fake.answers.insert("b".into(), Err(429));
        let ens = ensemble(&["a", "b"], &["s"]);
        let err = block_on(complete(&fake, &ens, &request(false), &ids())).err().unwrap();
        assert_eq!(err.status(), 502);
        let msg = err.message();
        assert!(msg.contains("a (HTTP 500)") && msg.contains("b (HTTP 429)"), "{msg}");
        assert!(fake.bodies.borrow().iter().all(|(m, _)| m != "s"), "no summary call");
    }

    #[test]
    fn never_more_than_six_calls_in_flight() {
        let fake = Fake::default();
        let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let ens = ensemble(&refs, &["s"]);
        let reply = block_on(complete(&fake, &ens, &request(false), &ids())).unwrap();
        assert_eq!(reply.panel_ok, 12);
        assert_eq!(fake.max_in_flight.get(), MAX_IN_FLIGHT);
    }

    #[test]
    fn summary_falls_back_to_the_next_model() {
        let mut fake = Fake::default();
        fake.answers.insert("s1".into(), Err(503));
        let ens = ensemble(&["a"], &["s1", "s2"]);
        let reply = block_on(complete(&fake, &ens, &request(false), &ids())).unwrap();
        assert_eq!(reply.body["n1"]["summary"]["model"], "s2");
        assert_eq!(reply.body["n1"]["summary"]["failed"][0]["model"], "s1");
    }

    fn stream_events(out: &[u8]) -> Vec<String> {
        let mut p = crate::sse::Parser::new();
        let mut ev = Vec::new();
        p.push(out, &mut ev).unwrap();
        ev.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn stream_relays_summary_and_sums_usage() {
        let mut fake = Fake::default();
        fake.stream.insert(
            "s".into(),
            vec![
                Ok(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_vec()),
                Ok(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n".to_vec()),
            ],
        );
        let ens = ensemble(&["a", "b"], &["s"]);
        let mut sink = VecSink(vec![]);
        block_on(stream(&fake, &ens, &request(true), &ids(), &mut sink));
        let ev = stream_events(&sink.0);
        assert_eq!(ev.first().map(String::as_str), Some(r#"{"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1,"id":"chatcmpl-1","model":"e","object":"chat.completion.chunk"}"#));
        assert!(ev[1].contains("\"content\":\"4\""));
        let usage: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 32);
        assert_eq!(ev.last().unwrap(), "[DONE]");
        // The summary was asked to stream with usage.
        let (_, body) = fake.bodies.borrow().last().cloned().unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn broken_summary_stream_ends_with_error_then_done() {
        let mut fake = Fake::default();
        fake.stream.insert("s".into(), vec![Ok(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"}}]}\n\n".to_vec()), Err("connection reset".into())]);
        let ens = ensemble(&["a"], &["s"]);
        let mut sink = VecSink(vec![]);
        block_on(stream(&fake, &ens, &request(true), &ids(), &mut sink));
        let ev = stream_events(&sink.0);
        let err: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
        assert_eq!(err["error"]["code"], "stream_error");
        assert_eq!(ev.last().unwrap(), "[DONE]");
    }

    #[test]
    fn stream_with_failed_panel_sends_error_event() {
        let mut fake = Fake::default();
        fake.answers.insert("a".into(), Err(500));
        let ens = ensemble(&["a"], &["s"]);
        let mut sink = VecSink(vec![]);
        block_on(stream(&fake, &ens, &request(true), &ids(), &mut sink));
        let ev = stream_events(&sink.0);
        assert_eq!(ev.len(), 3);
        let err: Value = serde_json::from_str(&ev[1]).unwrap();
        assert_eq!(err["error"]["code"], "panel_failed");
        assert_eq!(ev[2], "[DONE]");
    }
}
