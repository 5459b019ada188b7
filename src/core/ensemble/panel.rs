//! The panel phase: every panel model answers the conversation (at most
//! `MAX_IN_FLIGHT` calls open), each call streamed (so a model that is stuck
//! is told apart from one that is slow, and its text can be shown as it comes)
//! and retried on transient faults before its stream starts; the phase ends
//! when all have answered, the quorum is reached, the stragglers are cut or the
//! panel deadline passes. With layers (Mixture-of-Agents), the panel answers
//! again with the previous layer's answers as references. On a stream,
//! keep-alives and progress events go out while it works.

use std::cell::{Cell, RefCell};
use std::pin::Pin;

use futures::future::{select, Either};
use futures::stream::{Stream, StreamExt};

use super::report::{MemberReport, MemberStatus, PanelEnd, PanelEntry, Progress};
use super::pool::Pool;
use super::read::{Fault, Reader};
use super::retry::{with_retries, DEFAULT_TIMEOUT_MS};
use super::{prompt, ClientGone, Out, Runtime, MAX_IN_FLIGHT};
use crate::core::config::{Lineup, ModelSpec};
use crate::core::cost;
use crate::core::error::{Failure, FailureKind, N1Error};
use crate::core::events::{Completion, Event};
use crate::core::providers::Call;
use crate::core::request::{panel_messages, Conversation, Request};
use crate::core::usage::Usage;

/// One panel member's call, as it finished.
struct Member {
    index: usize,
    latency_ms: f64,
    /// From sending the request to the first content or reasoning token.
    ttft_ms: Option<f64>,
    attempts: u32,
    outcome: Result<Completion, Failure>,
}

/// Text the members streamed that is not yet out as a `panel_delta` event
/// (kept only when the client wants progress events).
struct Live {
    deltas: bool,
    pending: Vec<RefCell<String>>,
}

/// Why the panel phase stopped short of a synthesis.
pub enum Stop {
    Gone,
    Failed(N1Error),
}

/// The panel's results (of the last layer) in panel order.
pub struct Panel {
    pub reports: Vec<MemberReport>,
    /// The successful answers, in panel order.
    pub answers: Vec<String>,
    /// Over every layer.
    pub usage: Usage,
    pub end: PanelEnd,
    /// Reports of the layers before the last (Mixture-of-Agents).
    pub earlier: Vec<Vec<MemberReport>>,
    failures: Vec<Failure>,
}

impl Panel {
    /// The first successful answer and its model (`best_panel_answer`).
    pub fn best_answer(&self) -> Option<(&str, &str)> {
        let answer = self.answers.first()?;
        let model = self.reports.iter().find(|r| r.status == MemberStatus::Ok).map_or("", |r| r.model.as_str());
        Some((model, answer))
    }
}

/// Every layer of the panel. Layer 1 answers the conversation; in layer k > 1
/// each model answers again with layer k-1's answers as references. Panel
/// policies (deadline, quorum, min_panel) apply per layer; the request deadline
/// bounds them all.
pub async fn run<R: Runtime>(rt: &R, lineup: &Lineup<'_>, req: &Request, deadline: f64, mut out: Option<&mut Out<'_>>) -> Result<Panel, Stop> {
    let ens = lineup.ens;
    let base = panel_messages(&req.messages);
    let mut earlier = Vec::new();
    let mut usage = Usage::default();
    let mut previous: Vec<String> = Vec::new();
    for layer in 1..=ens.layers {
        rt.meter().inspect(|m| m.layer(layer));
        let refs: Vec<&str> = previous.iter().map(String::as_str).collect();
        let system = (layer > 1).then(|| prompt::layer_system_message(&refs, ens.policy.max_answer_chars));
        let conversation = Conversation { system: system.as_deref(), messages: &base };
        let layer_tag = (ens.layers > 1).then_some(layer);
        if let Some(out) = out.as_deref_mut() {
            let panel = lineup.panel.iter().enumerate().map(|(index, m)| PanelEntry { index, model: &m.model }).collect();
            out.progress(&Progress::PanelStart { panel, summary: &lineup.summary[0].model, layer: layer_tag });
        }
        let (members, end) = run_layer(rt, lineup, req, conversation, layer_tag, deadline, out.as_deref_mut()).await.map_err(|_| Stop::Gone)?;
        let mut result = collect(lineup, members, end);
        if let Some(out) = out.as_deref_mut() {
            out.progress(&Progress::PanelDone { panel_ok: result.answers.len(), panel_total: lineup.panel.len(), end, layer: layer_tag });
            out.flush().await.map_err(|_| Stop::Gone)?;
        }
        if rt.now_ms() >= deadline {
            return Err(Stop::Failed(N1Error::RequestTimeout(ens.policy.request_timeout_ms)));
        }
        let needed = ens.policy.min_panel;
        if !lineup.panel.is_empty() && result.answers.len() < needed {
            let failures = std::mem::take(&mut result.failures);
            return Err(Stop::Failed(N1Error::PanelFailed { failures, answered: result.answers.len(), needed }));
        }
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

fn collect(lineup: &Lineup, members: Vec<Member>, end: PanelEnd) -> Panel {
    let mut p = Panel { reports: vec![], answers: vec![], usage: Usage::default(), end, earlier: vec![], failures: vec![] };
    for m in members {
        p.reports.push(report(lineup, &m));
        match m.outcome {
            Ok(c) => {
                if let Some(u) = &c.usage {
                    p.usage.add(u);
                }
                p.answers.push(c.text);
            }
            Err(f) => p.failures.push(f),
        }
    }
    p
}

fn report(lineup: &Lineup, m: &Member) -> MemberReport {
    let latency_ms = m.latency_ms.max(0.0).round() as u64;
    let model = lineup.panel[m.index].model.clone();
    match &m.outcome {
        Ok(c) => MemberReport {
            model,
            status: MemberStatus::Ok,
            latency_ms,
            ttft_ms: m.ttft_ms.map(|t| t.max(0.0).round() as u64),
            attempts: m.attempts,
            usage: c.usage,
            error: None,
            truncated: prompt::cut_point(&c.text, lineup.ens.policy.max_answer_chars).is_some(),
            cost_usd: None,
            cost_estimated: false,
        },
        Err(f) => MemberReport {
            model,
            status: f.kind.into(),
            latency_ms,
            ttft_ms: m.ttft_ms.map(|t| t.max(0.0).round() as u64),
            attempts: m.attempts,
            usage: None,
            error: Some(f.clone()),
            truncated: false,
            cost_usd: None,
            cost_estimated: false,
        },
    }
}

/// One member's answer: its stream opened (retried on transient faults) and
/// read until it is over (`Decoder::read`), the answer assembled; its text
/// also goes to `live` and its size to the call's `charge` on the meter.
#[allow(clippy::too_many_arguments)]
async fn answer<R: Runtime>(rt: &R, model: &ModelSpec, body: &str, deadline: f64, tries: &Cell<u32>, live: &RefCell<String>, deltas: bool, first: &Cell<Option<f64>>, charge: Option<usize>) -> Result<Completion, Failure> {
    let upstream = with_retries(rt, model, deadline, tries, |t| rt.open_stream(model, body, t)).await?;
    let mut reader = Reader::new(rt, upstream, model.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS), deadline);
    let mut decoder = model.provider.decoder();
    let mut answer = Completion::default();
    let mut emit = |ev: Event<'_>| {
        if ev.is_content() && first.get().is_none() {
            first.set(Some(rt.now_ms()));
        }
        if let (true, Event::Text(t)) = (deltas, &ev) {
            live.borrow_mut().push_str(t);
        }
        // Counted as it arrives, so a call cut off mid-answer is estimated.
        cost::output(rt.meter(), charge, cost::chars_of(&ev));
        answer.collect(ev);
    };
    let fault = loop {
        let read = match reader.next().await {
            Ok(read) => read,
            Err(f) => break f,
        };
        match decoder.read(read.as_deref(), &mut emit) {
            Ok(true) => return Ok(answer),
            Ok(false) => {}
            Err(e) => break Fault::Stream(e),
        }
    };
    let reason = fault.message("panel model", rt.secrets());
    Err(match fault {
        Fault::Idle(_) | Fault::Deadline => Failure::timeout(&model.model, reason),
        _ => Failure::new(&model.model, Some(200), FailureKind::Error, reason),
    })
}

/// The layer's calls as a stream that yields each member when it finishes.
/// `tries[i]` counts member i's attempts as they are made (0 while queued).
fn calls<'a, R: Runtime>(
    rt: &'a R,
    lineup: &'a Lineup<'a>,
    req: &'a Request,
    conversation: Conversation<'a>,
    deadline: f64,
    tries: &'a [Cell<u32>],
    live: &'a Live,
) -> Pin<Box<dyn Stream<Item = Member> + 'a>> {
    let calls = lineup.panel.iter().enumerate().map(move |(index, model)| async move {
        let call = Call { model, conversation, params: &req.params, stream: true, with_tools: false };
        let body = model.provider.body(&call);
        // Timed from when the call starts, not from when it was queued.
        let t0 = rt.now_ms();
        let charge = cost::open(rt.meter(), false, index, model, &body, t0);
        let first = Cell::new(None);
        let outcome = answer(rt, model, &body, deadline, &tries[index], &live.pending[index], live.deltas, &first, charge).await;
        let usage = outcome.as_ref().map(|c| c.usage);
        cost::close_stream(rt.meter(), charge, rt.now_ms(), tries[index].get(), usage);
        Member { index, latency_ms: rt.now_ms() - t0, ttft_ms: first.get().map(|t| t - t0), attempts: tries[index].get(), outcome }
    });
    Box::pin(Pool::new(calls, MAX_IN_FLIGHT))
}

/// Keep-alive comments per `keep_alive_ms` while the panel works. They double
/// as the disconnect probe, and behind a proxy (`wrangler dev`'s) a client's
/// disconnect reaches us only with the third write after it: at a quarter of
/// the interval, a client that left is noticed within `keep_alive_ms`.
const KEEP_ALIVES_PER_INTERVAL: u64 = 4;

/// At most one `panel_delta` event per member this often (deltas coalesced).
const DELTA_MS: u64 = 100;

/// One layer: every member until all answered, the quorum is reached, the
/// stragglers are cut, the panel deadline passes or the client leaves.
async fn run_layer<R: Runtime>(
    rt: &R,
    lineup: &Lineup<'_>,
    req: &Request,
    conversation: Conversation<'_>,
    layer: Option<usize>,
    deadline: f64,
    mut out: Option<&mut Out<'_>>,
) -> Result<(Vec<Member>, PanelEnd), ClientGone> {
    let policy = &lineup.ens.policy;
    let start = rt.now_ms();
    let panel_deadline = policy.panel_timeout_ms.map_or(deadline, |t| deadline.min(start + t as f64));
    let n = lineup.panel.len();
    let tries: Vec<Cell<u32>> = vec![Cell::new(0); n];
    let deltas = out.as_ref().is_some_and(|o| o.progress);
    let live = Live { deltas, pending: (0..n).map(|_| RefCell::new(String::new())).collect() };
    let mut pending = calls(rt, lineup, req, conversation, panel_deadline, &tries, &live);
    let mut gone = match out.as_deref() {
        Some(o) => o.sink.gone(),
        None => Box::pin(futures::future::pending()),
    };
    let mut members = Vec::with_capacity(n);
    let mut ok = 0;
    // Once `min_panel` answers are in, the stragglers' time is up at this instant.
    let mut cutoff: Option<f64> = None;
    // One timer at a time, re-armed only when it fires (the next keep-alive,
    // delta flush, straggler cutoff or the panel deadline), not on every
    // member's answer: timers cost a JavaScript round trip each.
    let keep_alive = (policy.keep_alive_ms / KEEP_ALIVES_PER_INTERVAL).max(1);
    let tick_ms = out.as_ref().map(|_| if deltas { keep_alive.min(DELTA_MS) } else { keep_alive });
    let wake = |now: f64, cutoff: Option<f64>| {
        let end = cutoff.map_or(panel_deadline, |c| c.min(panel_deadline));
        tick_ms.map_or(end - now, |t| (t as f64).min(end - now)).max(0.0) as u64
    };
    let mut timer = Box::pin(rt.sleep(wake(start, cutoff)));
    let mut last_write = start;
    let end = loop {
        let now = rt.now_ms();
        if policy.quorum.is_some_and(|q| ok >= q) && members.len() < n {
            break PanelEnd::Quorum;
        }
        if cutoff.is_some_and(|c| now >= c) && members.len() < n {
            break PanelEnd::Straggler;
        }
        if panel_deadline - now < 1.0 {
            break PanelEnd::Timeout;
        }
        match select(select(pending.next(), &mut timer), &mut gone).await {
            Either::Left((Either::Left((Some(m), _)), _)) => {
                if m.outcome.is_ok() {
                    ok += 1;
                    if ok == policy.min_panel {
                        cutoff = policy.straggler.map(|s| start + (s.min_ms as f64).max(s.factor * (rt.now_ms() - start)));
                        if cutoff.is_some() {
                            timer = Box::pin(rt.sleep(wake(rt.now_ms(), cutoff)));
                        }
                    }
                }
                if let Some(out) = out.as_deref_mut() {
                    flush_delta(out, lineup, layer, &live, m.index);
                    member_progress(out, lineup, layer, &m);
                    out.flush().await?;
                    last_write = rt.now_ms();
                }
                members.push(m);
            }
            Either::Left((Either::Left((None, _)), _)) => break PanelEnd::All,
            Either::Left((Either::Right(_), _)) => {
                let now = rt.now_ms();
                if let Some(out) = out.as_deref_mut().filter(|_| now < panel_deadline) {
                    for i in 0..n {
                        flush_delta(out, lineup, layer, &live, i);
                    }
                    // Any write probes for a client that left; on silence, a comment.
                    if out.has_pending() || now - last_write >= keep_alive as f64 {
                        if !out.has_pending() {
                            out.keep_alive();
                        }
                        out.flush().await?;
                        last_write = now;
                    }
                }
                timer = Box::pin(rt.sleep(wake(now, cutoff)));
            }
            Either::Right(_) => return Err(ClientGone),
        }
    };
    drop(pending);
    if end != PanelEnd::All {
        rt.abort_in_flight();
        let now = rt.now_ms();
        for (index, m) in lineup.panel.iter().enumerate() {
            if members.iter().any(|x| x.index == index) {
                continue;
            }
            let f = match end {
                PanelEnd::Timeout => Failure::timeout(&m.model, "no answer before the panel deadline"),
                PanelEnd::Straggler => Failure::new(
                    &m.model,
                    None,
                    FailureKind::Cancelled,
                    format!("cut as a straggler: no answer {} ms into the panel", (now - start).round() as u64),
                ),
                _ => Failure::new(&m.model, None, FailureKind::Cancelled, "not needed: the quorum was reached"),
            };
            // A member still queued (beyond MAX_IN_FLIGHT) made no attempt.
            let member = Member { index, latency_ms: now - start, ttft_ms: None, attempts: tries[index].get(), outcome: Err(f) };
            if let Some(out) = out.as_deref_mut() {
                flush_delta(out, lineup, layer, &live, index);
                member_progress(out, lineup, layer, &member);
            }
            members.push(member);
        }
        if let Some(out) = out.as_deref_mut() {
            out.flush().await?;
        }
    }
    // In panel order (no sort: its code is large for a handful of members).
    let mut ordered = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(p) = members.iter().position(|m| m.index == i) {
            ordered.push(members.swap_remove(p));
        }
    }
    Ok((ordered, end))
}

/// Member `index`'s text since its last `panel_delta`, as one event.
fn flush_delta(out: &mut Out, lineup: &Lineup, layer: Option<usize>, live: &Live, index: usize) {
    let text = std::mem::take(&mut *live.pending[index].borrow_mut());
    if !text.is_empty() {
        out.progress(&Progress::PanelDelta { index, model: &lineup.panel[index].model, layer, content: &text });
    }
}

fn member_progress(out: &mut Out, lineup: &Lineup, layer: Option<usize>, m: &Member) {
    if !out.progress {
        return;
    }
    let r = report(lineup, m);
    out.progress(&Progress::PanelMember {
        index: m.index,
        model: &r.model,
        status: r.status,
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        attempts: r.attempts,
        usage: r.usage,
        error: r.error.as_ref(),
        layer,
        content: m.outcome.as_ref().ok().map(|c| c.text.as_str()),
    });
}
