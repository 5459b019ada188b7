//! The ensemble policy: fan the conversation out to the panel (at most
//! `MAX_IN_FLIGHT` calls open at once, each retried on transient faults), stop
//! the panel at its deadline or quorum, then have the summary model (or its
//! fallbacks) synthesize the answers, in either output mode. Every wait is
//! bounded by the request's deadline. Everything that touches the network or
//! the clock goes through `Runtime`, so the whole flow is tested on the host
//! with scripted fake models.

use std::future::Future;
use std::pin::Pin;

use futures::future::{select, Either};
use futures::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};

use crate::config::{Ensemble, ModelSpec, OnSummaryFailure};
use crate::error::{Failure, N1Error};
use crate::prompt;
use crate::relay::Relay;
use crate::request::{self as wire, ChatRequest, Messages, Purpose, UpstreamBody};
use crate::response::{self, Completion, MemberReport, N1Meta, ReplyIds, SummaryReport};
use crate::retry;
use crate::sse;
use crate::usage::{self, Usage};

/// Cloudflare lets one request hold 6 outgoing connections; a 7th would wait
/// for a free one anyway, so we queue it ourselves.
pub const MAX_IN_FLIGHT: usize = 6;

/// What the ensemble needs from the outside world.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    type Body: Stream<Item = Result<Vec<u8>, String>> + Unpin;
    /// One attempt at a non-streaming call, aborted after `timeout_ms`.
    async fn complete(&self, model: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Completion, Failure>;
    /// One attempt at a streaming call; resolves once the upstream answered 2xx
    /// (within `timeout_ms`).
    async fn open_stream(&self, model: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Self::Body, Failure>;
    fn now_ms(&self) -> f64;
    async fn sleep(&self, ms: u64);
    /// Uniform in [0, 1), for jitter.
    fn random(&self) -> f64;
    /// Abort every upstream request still open. Dropping a future does not
    /// abort its fetch, so stragglers and abandoned streams need this.
    fn abort_in_flight(&self);
    /// Secret values in use, scrubbed from any upstream text we repeat.
    fn secrets(&self) -> Vec<String>;
}

/// A future that resolves when the client has gone away.
pub type Gone = Pin<Box<dyn Future<Output = ()>>>;

/// Where a streamed reply goes. `Err` means the client is gone.
#[allow(async_fn_in_trait)]
pub trait Sink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), ()>;
    fn gone(&self) -> Gone;
}

/// One panel member's call, as it finished.
pub struct Member {
    pub index: usize,
    pub latency_ms: f64,
    pub attempts: u32,
    pub outcome: Result<Completion, Failure>,
}

/// Run `attempt` (given its timeout) until it succeeds, fails for good, or the
/// next try would not fit before `deadline`. Returns the outcome and the number
/// of attempts made.
async fn with_retries<R, T, F, Fut>(rt: &R, m: &ModelSpec, deadline: f64, mut attempt: F) -> (Result<T, Failure>, u32)
where
    R: Runtime,
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let max_retries = m.max_retries.unwrap_or(retry::DEFAULT_MAX_RETRIES);
    let mut n = 0;
    loop {
        let left = deadline - rt.now_ms();
        if left < 1.0 {
            return (Err(Failure::new(&m.model, None, "timeout", "the deadline passed before it could answer")), n);
        }
        let timeout = m.timeout_ms.unwrap_or(retry::DEFAULT_TIMEOUT_MS).min(left as u64);
        n += 1;
        match attempt(timeout).await {
            Ok(v) => return (Ok(v), n),
            Err(f) if n <= max_retries && retry::is_retryable(&f) => {
                let wait = retry::backoff_ms(n - 1, f.retry_after_ms, rt.random());
                if rt.now_ms() + wait as f64 >= deadline {
                    return (Err(f), n);
                }
                rt.sleep(wait).await;
            }
            Err(f) => return (Err(f), n),
        }
    }
}

fn panel_body(req: &ChatRequest, m: &ModelSpec, messages: Messages) -> String {
    UpstreamBody { client: &req.body, model: m, messages, stream: false, purpose: Purpose::Panel }.to_json()
}

/// The panel's calls as a stream that yields each member when it finishes.
fn panel_calls<'a, R: Runtime>(
    rt: &'a R,
    ens: &'a Ensemble,
    req: &'a ChatRequest,
    messages: Messages<'a>,
    deadline: f64,
) -> Pin<Box<dyn Stream<Item = Member> + 'a>> {
    let calls = ens.panel.iter().enumerate().map(move |(index, m)| async move {
        let body = panel_body(req, m, messages);
        // Timed from when the call starts, not from when it was queued.
        let t0 = rt.now_ms();
        let (outcome, attempts) = with_retries(rt, m, deadline, |t| rt.complete(m, &body, t)).await;
        Member { index, latency_ms: rt.now_ms() - t0, attempts, outcome }
    });
    Box::pin(stream::iter(calls).buffer_unordered(MAX_IN_FLIGHT))
}

/// Why the panel phase ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PanelEnd {
    /// Every member finished.
    All,
    /// `quorum` answers were in; the rest were cancelled.
    Quorum,
    /// The panel deadline passed; stragglers were aborted.
    Timeout,
}

impl PanelEnd {
    fn as_str(self) -> &'static str {
        match self {
            PanelEnd::All => "all",
            PanelEnd::Quorum => "quorum",
            PanelEnd::Timeout => "timeout",
        }
    }
}

/// What the panel phase tells the client as it goes (streams only).
#[allow(async_fn_in_trait)]
trait PanelWatch {
    /// How often to call `tick` while nothing happens; `None`: never.
    fn tick_ms(&self) -> Option<u64>;
    async fn tick(&mut self) -> Result<(), ()>;
    async fn member(&mut self, ens: &Ensemble, layer: usize, m: &Member) -> Result<(), ()>;
    /// Whether `layer` events are wanted (they are built only then).
    fn wants_layers(&self) -> bool {
        false
    }
    /// A layer starts or ends (`panel_start` / `panel_done`).
    async fn layer(&mut self, _event: Value) -> Result<(), ()> {
        Ok(())
    }
    fn gone(&self) -> Gone;
}

struct Quiet;
impl PanelWatch for Quiet {
    fn tick_ms(&self) -> Option<u64> {
        None
    }
    async fn tick(&mut self) -> Result<(), ()> {
        Ok(())
    }
    async fn member(&mut self, _: &Ensemble, _: usize, _: &Member) -> Result<(), ()> {
        Ok(())
    }
    fn gone(&self) -> Gone {
        Box::pin(futures::future::pending())
    }
}

/// The client left mid-request.
struct ClientGone;

#[allow(clippy::too_many_arguments)]
async fn run_panel<R: Runtime, W: PanelWatch>(
    rt: &R,
    ens: &Ensemble,
    req: &ChatRequest,
    messages: Messages<'_>,
    layer: usize,
    deadline: f64,
    watch: &mut W,
) -> Result<(Vec<Member>, PanelEnd), ClientGone> {
    let start = rt.now_ms();
    let panel_deadline = ens.policy.panel_timeout_ms.map_or(deadline, |t| deadline.min(start + t as f64));
    let mut calls = panel_calls(rt, ens, req, messages, panel_deadline);
    let mut gone = watch.gone();
    let mut members = Vec::with_capacity(ens.panel.len());
    let mut ok = 0;
    // One timer at a time, re-armed only when it fires (the next keep-alive or
    // the panel deadline), not on every member's answer: timers cost a JS
    // round trip each.
    let tick_ms = watch.tick_ms();
    let wake = move |now: f64| tick_ms.map_or(panel_deadline - now, |t| (t as f64).min(panel_deadline - now)).max(0.0) as u64;
    let mut timer = Box::pin(rt.sleep(wake(start)));
    let end = loop {
        if ens.policy.quorum.is_some_and(|q| ok >= q) && members.len() < ens.panel.len() {
            break PanelEnd::Quorum;
        }
        if panel_deadline - rt.now_ms() < 1.0 {
            break PanelEnd::Timeout;
        }
        match select(select(calls.next(), &mut timer), &mut gone).await {
            Either::Left((Either::Left((Some(m), _)), _)) => {
                ok += m.outcome.is_ok() as usize;
                let r = watch.member(ens, layer, &m).await;
                members.push(m);
                if r.is_err() {
                    return Err(ClientGone);
                }
            }
            Either::Left((Either::Left((None, _)), _)) => break PanelEnd::All,
            Either::Left((Either::Right(_), _)) => {
                let now = rt.now_ms();
                if now < panel_deadline && watch.tick().await.is_err() {
                    return Err(ClientGone);
                }
                timer = Box::pin(rt.sleep(wake(now)));
            }
            Either::Right(_) => return Err(ClientGone),
        }
    };
    drop(calls);
    if end != PanelEnd::All {
        rt.abort_in_flight();
        let now = rt.now_ms();
        for (index, m) in ens.panel.iter().enumerate() {
            if members.iter().any(|x| x.index == index) {
                continue;
            }
            let f = match end {
                PanelEnd::Timeout => Failure::new(&m.model, None, "timeout", "no answer before the panel deadline"),
                _ => Failure::new(&m.model, None, "cancelled", "not needed: the quorum was reached"),
            };
            let member = Member { index, latency_ms: now - start, attempts: 1, outcome: Err(f) };
            if watch.member(ens, layer, &member).await.is_err() {
                return Err(ClientGone);
            }
            members.push(member);
        }
    }
    members.sort_by_key(|m| m.index);
    Ok((members, end))
}

/// The panel's results in panel order.
pub struct PanelResult {
    pub reports: Vec<MemberReport>,
    pub answers: Vec<String>,
    /// Over every layer.
    pub usage: Usage,
    pub failures: Vec<Failure>,
    pub end: PanelEnd,
    /// Reports of the layers before the last (Mixture-of-Agents).
    pub earlier: Vec<Vec<MemberReport>>,
}

impl PanelResult {
    fn new(ens: &Ensemble, members: Vec<Member>, end: PanelEnd) -> Self {
        let mut r = PanelResult { reports: vec![], answers: vec![], usage: Usage::default(), failures: vec![], end, earlier: vec![] };
        for m in members {
            let report = member_report(ens, &m);
            match m.outcome {
                Ok(c) => {
                    r.answers.push(c.text());
                    if let Some(u) = &c.usage {
                        r.usage.add(u);
                    }
                }
                Err(f) => r.failures.push(f),
            }
            r.reports.push(report);
        }
        r
    }

    fn check(&self, ens: &Ensemble) -> Result<(), N1Error> {
        let needed = ens.policy.min_panel;
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
            panel_end: self.end.as_str(),
            degraded: self.answers.len() < ens.panel.len() || summary.status != "ok",
            layers: (!self.earlier.is_empty()).then(|| {
                let mut all = self.earlier.clone();
                all.push(self.reports.clone());
                all
            }),
            summary,
        }
    }

    /// Calls of every layer, for the usage sum.
    fn all_reports(&self) -> impl Iterator<Item = &MemberReport> {
        self.earlier.iter().flatten().chain(&self.reports)
    }

    /// `on_summary_failure: best_panel_answer`: the first panel answer, and its model.
    fn best_answer(&self, ens: &Ensemble) -> Option<(&str, &str)> {
        if ens.policy.on_summary_failure != OnSummaryFailure::BestPanelAnswer {
            return None;
        }
        let answer = self.answers.first()?;
        let model = self.reports.iter().find(|r| r.status == "ok").map_or("", |r| r.model.as_str());
        Some((model, answer))
    }

    fn synthesis(&self, ens: &Ensemble) -> String {
        let answers: Vec<&str> = self.answers.iter().map(String::as_str).collect();
        prompt::synthesis_system_message(ens.synthesis_prompt.as_deref(), &answers)
    }
}

fn member_report(ens: &Ensemble, m: &Member) -> MemberReport {
    let latency_ms = m.latency_ms.max(0.0).round() as u64;
    let model = ens.panel[m.index].model.clone();
    match &m.outcome {
        Ok(c) => MemberReport { model, status: "ok", latency_ms, attempts: m.attempts, usage: c.usage, error: None },
        Err(f) => MemberReport { model, status: f.kind, latency_ms, attempts: m.attempts, usage: None, error: Some(f.clone()) },
    }
}

/// Why the panel phase stopped short of a synthesis.
enum PanelStop {
    Gone,
    Failed(N1Error),
}

/// Every layer of the panel. Layer 1 answers the conversation; in layer k > 1
/// each model answers again with layer k-1's answers as references
/// (Mixture-of-Agents). Panel policies (deadline, quorum, min_panel) apply per
/// layer; the request deadline bounds them all.
async fn run_layers<R: Runtime, W: PanelWatch>(rt: &R, ens: &Ensemble, req: &ChatRequest, deadline: f64, watch: &mut W) -> Result<PanelResult, PanelStop> {
    let converted = wire::panel_messages(req.messages());
    let base: &[Value] = converted.as_deref().unwrap_or(req.messages());
    let mut earlier = Vec::new();
    let mut usage = Usage::default();
    let mut previous: Vec<String> = Vec::new();
    for layer in 1..=ens.layers {
        let refs: Vec<&str> = previous.iter().map(String::as_str).collect();
        let system = prompt::layer_system_message(&refs);
        let messages = if layer == 1 { Messages::Client(base) } else { Messages::WithSystem { system: &system, rest: base } };
        if watch.wants_layers() {
            let models: Vec<Value> = ens.panel.iter().enumerate().map(|(i, m)| json!({"index": i, "model": m.model})).collect();
            let mut start = json!({"type": "panel_start", "panel": models, "summary": ens.summary[0].model});
            if ens.layers > 1 {
                start["layer"] = layer.into();
            }
            watch.layer(start).await.map_err(|_| PanelStop::Gone)?;
        }
        let (members, end) = run_panel(rt, ens, req, messages, layer, deadline, watch).await.map_err(|_| PanelStop::Gone)?;
        let mut result = PanelResult::new(ens, members, end);
        if watch.wants_layers() {
            let mut done = json!({"type": "panel_done", "panel_ok": result.answers.len(), "panel_total": ens.panel.len(), "end": end.as_str()});
            if ens.layers > 1 {
                done["layer"] = layer.into();
            }
            watch.layer(done).await.map_err(|_| PanelStop::Gone)?;
        }
        if rt.now_ms() >= deadline {
            return Err(PanelStop::Failed(N1Error::RequestTimeout(ens.policy.request_timeout_ms)));
        }
        result.check(ens).map_err(PanelStop::Failed)?;
        usage.add(&result.usage);
        if layer == ens.layers {
            result.usage = usage;
            result.earlier = earlier;
            return Ok(result);
        }
        previous = std::mem::take(&mut result.answers);
        earlier.push(result.reports);
    }
    unreachable!("an ensemble has at least one layer")
}

/// The summary request body; with no panel (direct mode) the conversation goes as is.
fn summary_body(ens: &Ensemble, req: &ChatRequest, model: &ModelSpec, stream: bool, system: &str) -> String {
    let trimmed = (!ens.keep_history).then(|| wire::last_turn(req.messages()));
    let conversation = trimmed.as_deref().unwrap_or(req.messages());
    let messages = if ens.panel.is_empty() {
        Messages::Client(conversation)
    } else {
        Messages::WithSystem { system, rest: conversation }
    };
    UpstreamBody { client: &req.body, model, messages, stream, purpose: Purpose::Summary }.to_json()
}

fn summary_report(model: &str, status: &'static str, latency_ms: f64, usage: Option<Usage>, failed: Vec<Failure>) -> SummaryReport {
    SummaryReport { model: model.to_owned(), status, latency_ms: latency_ms.max(0.0).round() as u64, usage, failed }
}

/// A finished non-streaming reply.
pub struct Reply {
    pub body: Value,
    pub panel_ok: usize,
    pub panel_total: usize,
    pub degraded: bool,
    pub fallback: bool,
}

fn deadline_of(rt: &impl Runtime, ens: &Ensemble) -> f64 {
    rt.now_ms() + ens.policy.request_timeout_ms as f64
}

/// Non-streaming: panel, then summary (falling back along `ens.summary`).
pub async fn complete<R: Runtime>(rt: &R, ens: &Ensemble, req: &ChatRequest, ids: &ReplyIds) -> Result<Reply, N1Error> {
    let deadline = deadline_of(rt, ens);
    let panel = match run_layers(rt, ens, req, deadline, &mut Quiet).await {
        Ok(p) => p,
        Err(PanelStop::Failed(e)) => return Err(e),
        Err(PanelStop::Gone) => unreachable!("a quiet panel never sees the client leave"),
    };
    let system = panel.synthesis(ens);
    let mut failed = Vec::new();
    for model in &ens.summary {
        let body = summary_body(ens, req, model, false, &system);
        let t0 = rt.now_ms();
        match with_retries(rt, model, deadline, |t| rt.complete(model, &body, t)).await.0 {
            Ok(c) => {
                let report = summary_report(&model.model, "ok", rt.now_ms() - t0, c.usage, failed);
                let total = usage::sum(panel.all_reports().filter_map(|r| r.usage.as_ref()).chain(c.usage.as_ref()));
                return Ok(reply(ids, &c, &total, panel.meta(ens, report), false));
            }
            Err(f) => failed.push(f),
        }
    }
    if rt.now_ms() >= deadline {
        return Err(N1Error::RequestTimeout(ens.policy.request_timeout_ms));
    }
    if let Some((model, answer)) = panel.best_answer(ens) {
        let c = Completion { message: json!({"role": "assistant", "content": answer}), finish_reason: Some("stop".into()), usage: None };
        let report = summary_report(model, "best_panel_answer", 0.0, None, failed);
        return Ok(reply(ids, &c, &panel.usage, panel.meta(ens, report), true));
    }
    Err(N1Error::SummaryFailed(failed))
}

fn reply(ids: &ReplyIds, c: &Completion, total: &Usage, meta: N1Meta, fallback: bool) -> Reply {
    Reply {
        body: response::chat_completion(ids, c, total, &meta),
        panel_ok: meta.panel_ok,
        panel_total: meta.panel_total,
        degraded: meta.degraded,
        fallback,
    }
}

/// The streaming side of the panel phase: progress events (when asked for)
/// and keep-alive comments.
struct StreamWatch<'a, S: Sink> {
    out: &'a mut S,
    ids: &'a ReplyIds,
    progress: bool,
    /// SSE comments on silence, so proxies and browsers keep the connection.
    keep_alive_ms: u64,
}

impl<S: Sink> StreamWatch<'_, S> {
    async fn progress(&mut self, event: Value) -> Result<(), ()> {
        if !self.progress {
            return Ok(());
        }
        let mut b = Vec::new();
        sse::encode_data(&mut b, &response::progress_chunk(self.ids, event).to_string());
        self.out.send(b).await
    }
}

/// Keep-alive comments per `keep_alive_ms` while the panel works. They double
/// as the disconnect probe, and behind a proxy (`wrangler dev`'s) a client's
/// disconnect reaches us only with the third write after it: at a quarter of
/// the interval, a client that left is noticed within `keep_alive_ms`.
const KEEP_ALIVES_PER_INTERVAL: u64 = 4;

impl<S: Sink> PanelWatch for StreamWatch<'_, S> {
    fn tick_ms(&self) -> Option<u64> {
        Some((self.keep_alive_ms / KEEP_ALIVES_PER_INTERVAL).max(1))
    }
    async fn tick(&mut self) -> Result<(), ()> {
        self.out.send(sse::KEEP_ALIVE.to_vec()).await
    }
    async fn member(&mut self, ens: &Ensemble, layer: usize, m: &Member) -> Result<(), ()> {
        if !self.progress {
            return Ok(());
        }
        let mut event = serde_json::to_value(member_report(ens, m)).unwrap_or(Value::Null);
        event["type"] = "panel_member".into();
        event["index"] = m.index.into();
        if ens.layers > 1 {
            event["layer"] = layer.into();
        }
        if let Ok(c) = &m.outcome {
            event["content"] = c.text().into();
        }
        self.progress(event).await
    }
    fn wants_layers(&self) -> bool {
        self.progress
    }
    async fn layer(&mut self, event: Value) -> Result<(), ()> {
        self.progress(event).await
    }
    fn gone(&self) -> Gone {
        self.out.gone()
    }
}

/// Streaming: the role chunk goes out at once, keep-alives (and progress events
/// when asked for) while the panel runs, then the summary stream relayed chunk
/// by chunk. Every path ends with `[DONE]`, after an error event if something
/// failed. When the client leaves, every open upstream request is aborted.
pub async fn stream<R: Runtime, S: Sink>(rt: &R, ens: &Ensemble, req: &ChatRequest, ids: &ReplyIds, out: &mut S) {
    if stream_inner(rt, ens, req, ids, out).await.is_err() {
        rt.abort_in_flight();
    }
}

async fn stream_inner<R: Runtime, S: Sink>(rt: &R, ens: &Ensemble, req: &ChatRequest, ids: &ReplyIds, out: &mut S) -> Result<(), ClientGone> {
    let deadline = deadline_of(rt, ens);
    let mut first = Vec::new();
    sse::encode_data(&mut first, &response::chunk(ids, json!({"role": "assistant", "content": ""}), None).to_string());
    out.send(first).await.map_err(|_| ClientGone)?;

    let progress = req.progress || ens.policy.progress;
    let mut watch = StreamWatch { out, ids, progress, keep_alive_ms: ens.policy.keep_alive_ms };
    let panel = run_layers(rt, ens, req, deadline, &mut watch).await;
    let out = watch.out;
    let panel = match panel {
        Ok(p) => p,
        Err(PanelStop::Gone) => return Err(ClientGone),
        Err(PanelStop::Failed(e)) => return send_error(out, &e.body()).await,
    };

    let system = panel.synthesis(ens);
    let mut gone = out.gone();
    let mut failed = Vec::new();
    for model in &ens.summary {
        let body = summary_body(ens, req, model, true, &system);
        let t0 = rt.now_ms();
        if progress {
            let mut b = Vec::new();
            sse::encode_data(&mut b, &response::progress_chunk(ids, json!({"type": "summary_start", "model": model.model})).to_string());
            out.send(b).await.map_err(|_| ClientGone)?;
        }
        let opening = with_retries(rt, model, deadline, |t| rt.open_stream(model, &body, t));
        let mut upstream = match select(Box::pin(opening), &mut gone).await {
            Either::Left(((Ok(b), _), _)) => b,
            Either::Left(((Err(f), _), _)) => {
                failed.push(f);
                continue;
            }
            Either::Right(_) => return Err(ClientGone),
        };
        let idle_ms = model.timeout_ms.unwrap_or(retry::DEFAULT_TIMEOUT_MS);
        let mut relay = Relay::new(ids.clone(), rt.secrets());
        let mut buf = Vec::new();
        // The idle timer is re-armed when it fires, for what is left of the
        // idle window since the last read, instead of once per read.
        let mut last_read = rt.now_ms();
        let mut timer = Box::pin(rt.sleep(idle_ms.min((deadline - last_read).max(0.0) as u64)));
        let result = loop {
            if deadline - rt.now_ms() < 1.0 {
                break Err(RelayFault::Deadline);
            }
            match select(select(upstream.next(), &mut timer), &mut gone).await {
                Either::Left((Either::Left((Some(Ok(bytes)), _)), _)) => {
                    last_read = rt.now_ms();
                    let r = relay.push(&bytes, &mut buf);
                    if !buf.is_empty() {
                        out.send(std::mem::take(&mut buf)).await.map_err(|_| ClientGone)?;
                    }
                    if let Err(e) = r {
                        break Err(RelayFault::Broken(e.message()));
                    }
                }
                Either::Left((Either::Left((Some(Err(e)), _)), _)) => {
                    break Err(RelayFault::Broken(format!("The summary model's stream broke: {e}")))
                }
                Either::Left((Either::Left((None, _)), _)) => break relay.end(&mut buf).map_err(|e| RelayFault::Broken(e.message())),
                Either::Left((Either::Right(_), _)) => {
                    let now = rt.now_ms();
                    if now >= deadline {
                        break Err(RelayFault::Deadline);
                    }
                    let idle_until = last_read + idle_ms as f64;
                    if now >= idle_until {
                        break Err(RelayFault::Broken(format!("The summary model sent nothing for {idle_ms} ms.")));
                    }
                    timer = Box::pin(rt.sleep((idle_until.min(deadline) - now).ceil() as u64));
                }
                Either::Right(_) => return Err(ClientGone),
            }
        };
        match result {
            Ok(()) => {
                let report = summary_report(&model.model, "ok", rt.now_ms() - t0, relay.usage(), failed);
                let meta = panel.meta(ens, report);
                let total = req.include_usage.then(|| {
                    let mut u = panel.usage;
                    if let Some(s) = relay.usage() {
                        u.add(&s);
                    }
                    u
                });
                relay.tail(&mut buf, &meta, total.as_ref());
                return out.send(buf).await.map_err(|_| ClientGone);
            }
            Err(fault) => {
                rt.abort_in_flight();
                let deadline_hit = fault == RelayFault::Deadline;
                let message = match fault {
                    RelayFault::Broken(m) => m,
                    RelayFault::Deadline => N1Error::RequestTimeout(ens.policy.request_timeout_ms).message(),
                };
                // Nothing reached the client yet: the next summary model may still answer.
                if !relay.sent_content() && !deadline_hit {
                    let secrets = rt.secrets();
                    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
                    failed.push(Failure::new(&model.model, Some(200), "error", response::clean_reason(&message, &secrets)));
                    continue;
                }
                let code = if deadline_hit { "request_timeout" } else { "stream_error" };
                buf.extend_from_slice(&error_then_done(&response::error_event(&message, "upstream_error", code)));
                return out.send(buf).await.map_err(|_| ClientGone);
            }
        }
    }

    if rt.now_ms() >= deadline {
        return send_error(out, &N1Error::RequestTimeout(ens.policy.request_timeout_ms).body()).await;
    }
    if let Some((model, answer)) = panel.best_answer(ens) {
        let mut buf = Vec::new();
        sse::encode_data(&mut buf, &response::chunk(ids, json!({"content": answer}), None).to_string());
        let meta = panel.meta(ens, summary_report(model, "best_panel_answer", 0.0, None, failed));
        let mut relay = Relay::new(ids.clone(), vec![]);
        relay.tail(&mut buf, &meta, req.include_usage.then_some(&panel.usage));
        return out.send(buf).await.map_err(|_| ClientGone);
    }
    send_error(out, &N1Error::SummaryFailed(failed).body()).await
}

#[derive(Debug, PartialEq)]
enum RelayFault {
    Broken(String),
    Deadline,
}

async fn send_error<S: Sink>(out: &mut S, err: &Value) -> Result<(), ClientGone> {
    out.send(error_then_done(err)).await.map_err(|_| ClientGone)
}

fn error_then_done(err: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    sse::encode_data(&mut b, &err.to_string());
    b.extend_from_slice(sse::DONE);
    b
}

#[cfg(test)]
mod tests;
