//! The summary phase, one for both output modes: the summary model synthesizes
//! the panel's answers (fenced in a system message, `prompt.rs`) and answers the
//! conversation; a model that fails before its first token is replaced by the
//! next in the list; when all fail, the best panel answer stands in if the
//! ensemble says so. Non-streaming it returns the answer; streaming it relays
//! the summary's events through the dialect's encoder (`relay`).

use std::cell::Cell;

use futures::future::{select, Either};

use super::panel::Panel;
use super::report::{N1Meta, Progress, SummaryReport, SummaryStatus};
use super::retry::{with_retries, DEFAULT_TIMEOUT_MS};
use super::read::{Fault, Reader};
use super::{prompt, Answer, ClientGone, Gone, Out, Runtime};
use crate::core::config::{Lineup, ModelSpec, OnSummaryFailure};
use crate::core::cost;
use crate::core::error::{Failure, FailureKind, N1Error};
use crate::core::events::{Completion, Event};
use crate::core::providers::Call;
use crate::core::request::{last_turn, Conversation, Request};
use crate::core::usage::Usage;

pub enum Done {
    /// Non-streaming: the answer, for the dialect to encode.
    Answer(Answer),
    /// Streaming: the answer went out, ended properly.
    Streamed,
}

pub enum Stop {
    Gone,
    Failed(N1Error),
}

impl From<ClientGone> for Stop {
    fn from(_: ClientGone) -> Self {
        Stop::Gone
    }
}

pub async fn run<R: Runtime>(rt: &R, lineup: &Lineup<'_>, req: &Request, panel: &Panel, deadline: f64, mut out: Option<&mut Out<'_>>) -> Result<Done, Stop> {
    let ens = lineup.ens;
    let trimmed = (!ens.keep_history).then(|| last_turn(&req.messages));
    let messages = trimmed.as_deref().unwrap_or(&req.messages);
    // With no panel (direct mode) the conversation goes as it is.
    let system = (!lineup.panel.is_empty()).then(|| {
        let answers: Vec<&str> = panel.answers.iter().map(String::as_str).collect();
        prompt::synthesis_system_message(ens.synthesis_prompt.as_deref(), &answers, ens.policy.max_answer_chars)
    });
    let conversation = Conversation { system: system.as_deref(), messages };
    let mut gone: Gone = match out.as_deref() {
        Some(o) => o.sink.gone(),
        None => Box::pin(futures::future::pending()),
    };
    let mut failed = Vec::new();
    for model in lineup.summary {
        let call = Call { model, conversation, params: &req.params, stream: out.is_some(), with_tools: true };
        let body = model.provider.body(&call);
        let t0 = rt.now_ms();
        let charge = cost::open(rt.meter(), true, 0, model, &body, t0);
        let Some(out) = out.as_deref_mut() else {
            let body = &body;
            let attempt = |t| async move {
                let text = rt.complete(model, body, t).await?;
                model.provider.parse_reply(&text).map_err(|r| Failure::new(&model.model, Some(200), FailureKind::Error, r))
            };
            let tries = Cell::new(0);
            let result = with_retries(rt, model, deadline, &tries, attempt).await;
            cost::close(rt.meter(), charge, rt.now_ms(), tries.get(), result.as_ref());
            match result {
                Ok(completion) => {
                    let usage = completion.usage;
                    let meta = meta(lineup, req, panel, report(&model.model, SummaryStatus::Ok, rt.now_ms() - t0, usage, failed));
                    return Ok(Done::Answer(Answer { usage: total(panel, usage), completion, meta, fallback: false }));
                }
                Err(f) => {
                    failed.push(f);
                    continue;
                }
            }
        };
        out.progress(&Progress::SummaryStart { model: &model.model });
        out.flush().await?;
        match relay(rt, model, &body, deadline, out, &mut gone, charge).await? {
            Relayed::Done(usage) => {
                let meta = meta(lineup, req, panel, report(&model.model, SummaryStatus::Ok, rt.now_ms() - t0, usage, failed));
                out.finish(meta, total(panel, usage));
                out.flush().await?;
                return Ok(Done::Streamed);
            }
            // Nothing reached the client yet: the next summary model may still answer.
            Relayed::FailedEarly(f) => failed.push(f),
            Relayed::Broken(e) => return Err(Stop::Failed(e)),
            Relayed::Deadline => return Err(Stop::Failed(N1Error::RequestTimeout(ens.policy.request_timeout_ms))),
        }
    }
    if rt.now_ms() >= deadline {
        return Err(Stop::Failed(N1Error::RequestTimeout(ens.policy.request_timeout_ms)));
    }
    let best = panel.best_answer().filter(|_| ens.policy.on_summary_failure == OnSummaryFailure::BestPanelAnswer);
    let Some((model, answer)) = best else {
        return Err(Stop::Failed(N1Error::SummaryFailed(failed)));
    };
    let completion = Completion::text(answer);
    let meta = meta(lineup, req, panel, report(model, SummaryStatus::BestPanelAnswer, 0.0, None, failed));
    match out {
        None => Ok(Done::Answer(Answer { completion, usage: panel.usage, meta, fallback: true })),
        Some(out) => {
            for ev in completion.events() {
                out.event(&ev);
            }
            out.finish(meta, panel.usage);
            out.flush().await?;
            Ok(Done::Streamed)
        }
    }
}

fn total(panel: &Panel, summary: Option<Usage>) -> Usage {
    let mut u = panel.usage;
    if let Some(s) = &summary {
        u.add(s);
    }
    u
}

fn report(model: &str, status: SummaryStatus, latency_ms: f64, usage: Option<Usage>, failed: Vec<Failure>) -> SummaryReport {
    SummaryReport { model: model.to_owned(), status, latency_ms: latency_ms.max(0.0).round() as u64, usage, failed, cost_usd: None, cost_estimated: false }
}

fn meta(lineup: &Lineup, req: &Request, panel: &Panel, summary: SummaryReport) -> N1Meta {
    let ens = lineup.ens;
    let panel_ok = panel.answers.len();
    N1Meta {
        ensemble: ens.name.clone(),
        route: lineup.route,
        panel: panel.reports.clone(),
        panel_ok,
        panel_total: lineup.panel.len(),
        panel_end: panel.end,
        degraded: panel_ok < lineup.panel.len() || summary.status != SummaryStatus::Ok,
        layers: (!panel.earlier.is_empty()).then(|| {
            let mut all = panel.earlier.clone();
            all.push(panel.reports.clone());
            all
        }),
        ignored_tools: req.ignored_tools.clone(),
        summary,
        cost_usd: None,
        cost_estimated: false,
    }
}

enum Relayed {
    /// The stream ended well; the summary model's usage.
    Done(Option<Usage>),
    /// It failed before any of its answer reached the client.
    FailedEarly(Failure),
    /// It failed after part of its answer went out.
    Broken(N1Error),
    /// The request's deadline passed.
    Deadline,
}

/// Open the summary model's stream and relay it, read by read: each read is
/// decoded into events, encoded by the dialect and sent. Bounded by the
/// model's `timeout_ms` between reads and by the request's deadline. The
/// call's `charge` on the meter follows what it received.
async fn relay<R: Runtime>(rt: &R, model: &ModelSpec, body: &str, deadline: f64, out: &mut Out<'_>, gone: &mut Gone, charge: Option<usize>) -> Result<Relayed, ClientGone> {
    let tries = Cell::new(0);
    let opening = with_retries(rt, model, deadline, &tries, |t| rt.open_stream(model, body, t));
    let upstream = match select(Box::pin(opening), &mut *gone).await {
        Either::Left((Ok(b), _)) => b,
        Either::Left((Err(f), _)) => {
            cost::close_stream(rt.meter(), charge, rt.now_ms(), tries.get(), Err(&f));
            return Ok(Relayed::FailedEarly(f));
        }
        Either::Right(_) => return Err(ClientGone),
    };
    let mut reader = Reader::new(rt, upstream, model.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS), deadline);
    let mut decoder = model.provider.decoder();
    let mut usage = None;
    // Held until the stream ended well: a model that fails after its finish
    // reason must not leave it to the fallback that answers instead.
    let mut finish = None;
    let mut sent = false;
    let mut chars = 0;
    let result = loop {
        let read = match select(Box::pin(reader.next()), &mut *gone).await {
            Either::Left((read, _)) => read,
            Either::Right(_) => return Err(ClientGone),
        };
        let mut emit = |ev: Event<'_>| match ev {
            Event::Usage(u) => usage = Some(u),
            Event::Finish(f) => finish = Some(f),
            ev => {
                sent |= ev.is_content();
                chars += cost::chars_of(&ev);
                out.event(&ev);
            }
        };
        // `Ok(true)`: the stream is over (`Decoder::read`).
        let r = read.and_then(|bytes| decoder.read(bytes.as_deref(), &mut emit).map_err(Fault::Stream));
        cost::output(rt.meter(), charge, std::mem::take(&mut chars));
        out.flush().await?;
        match r {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(fault) => break Err(fault),
        }
    };
    out.flush().await?;
    let fault = match result {
        Ok(()) => {
            if let Some(f) = finish {
                out.event(&Event::Finish(f));
            }
            cost::output(rt.meter(), charge, chars);
            cost::close_stream(rt.meter(), charge, rt.now_ms(), tries.get(), Ok(usage));
            return Ok(Relayed::Done(usage));
        }
        Err(f) => f,
    };
    rt.abort_in_flight();
    if matches!(fault, Fault::Deadline) {
        return Ok(Relayed::Deadline);
    }
    let secrets = rt.secrets();
    let message = fault.message("summary model", secrets);
    if !sent {
        let f = Failure::new(&model.model, Some(200), FailureKind::Error, secrets.scrub(&message));
        cost::close_stream(rt.meter(), charge, rt.now_ms(), tries.get(), Err(&f));
        return Ok(Relayed::FailedEarly(f));
    }
    Ok(Relayed::Broken(N1Error::Stream { message, code: "stream_error" }))
}
