//! The ensemble policy, in two phases both output modes share: the panel
//! (`panel.rs`: fan-out with at most `MAX_IN_FLIGHT` calls open, retries,
//! deadline, quorum, Mixture-of-Agents layers) and the summary (`summary.rs`:
//! the synthesis, its fallbacks, the best-panel-answer fallback). Every wait is
//! bounded by the request's deadline. Everything that touches the network or
//! the clock goes through `Runtime`, so the whole flow is tested on the host
//! with scripted fake models (`tests.rs`). It sees only the internal types:
//! the request, events, completions; dialects encode what it produces.

mod panel;
mod pool;
pub mod prompt;
mod read;
pub mod report;
pub mod retry;
mod summary;

use std::future::Future;
use std::pin::Pin;

use futures::stream::Stream;

use crate::core::config::{Ensemble, Lineup, ModelSpec, Route, ToolTurns};
use crate::core::cost::Meter;
use crate::core::dialects::Encoder;
use crate::core::error::{Failure, N1Error};
use crate::core::events::{Completion, Event};
use crate::core::request::{Request, Role};
use crate::core::secrets::Secrets;
use crate::core::usage::Usage;
use report::{N1Meta, Progress};

/// Cloudflare lets one request hold 6 outgoing connections; a 7th would wait
/// for a free one anyway, so we queue it ourselves.
pub const MAX_IN_FLIGHT: usize = 6;

/// What the ensemble needs from the outside world.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    type Body: Stream<Item = Result<Vec<u8>, String>> + Unpin;
    /// One attempt at a non-streaming call, aborted after `timeout_ms`: the
    /// 2xx reply's text (for Workers AI: `AI.run`'s output as JSON).
    async fn complete(&self, model: &ModelSpec, body: &str, timeout_ms: u64) -> Result<String, Failure>;
    /// One attempt at a streaming call; resolves once the upstream answered 2xx
    /// (within `timeout_ms`), with its body.
    async fn open_stream(&self, model: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Self::Body, Failure>;
    fn now_ms(&self) -> f64;
    async fn sleep(&self, ms: u64);
    /// Uniform in [0, 1), for jitter.
    fn random(&self) -> f64;
    /// Abort every upstream request still open. Dropping a future does not
    /// abort its fetch, so stragglers and abandoned streams need this.
    fn abort_in_flight(&self);
    /// Secret values in use, scrubbed from any upstream text we repeat.
    fn secrets(&self) -> &Secrets;
    /// Where every upstream call is recorded as it starts and ends (costs,
    /// budgets, metrics); none by default.
    fn meter(&self) -> Option<&Meter> {
        None
    }
}

/// A future that resolves when the client has gone away.
pub type Gone = Pin<Box<dyn Future<Output = ()>>>;

/// Where a streamed reply's bytes go.
pub trait Sink {
    /// `Err`: the client is gone.
    fn send(&mut self, bytes: Vec<u8>) -> Pin<Box<dyn Future<Output = Result<(), ()>> + '_>>;
    fn gone(&self) -> Gone;
}

/// The client left mid-request.
#[derive(Debug)]
pub struct ClientGone;

/// A streamed reply: the dialect's encoder in front of the client's sink.
pub struct Out<'a> {
    pub enc: &'a mut dyn Encoder,
    pub sink: &'a mut dyn Sink,
    pub progress: bool,
    /// When set, the answer is also collected here, and its `n1` and usage
    /// kept by `finish` (to store the reply afterwards).
    pub answer: Option<Completion>,
    pub ending: Option<(N1Meta, Usage)>,
    /// The stream ended well (`finish`), not with an error.
    pub finished: bool,
    /// The runtime's meter: the costs of the calls go into the `n1` of `finish`.
    pub meter: Option<&'a Meter>,
    buf: Vec<u8>,
}

impl<'a> Out<'a> {
    pub fn new(enc: &'a mut dyn Encoder, sink: &'a mut dyn Sink, progress: bool) -> Self {
        Out { enc, sink, progress, answer: None, ending: None, finished: false, meter: None, buf: Vec::new() }
    }

    pub fn event(&mut self, ev: &Event<'_>) {
        if let Some(a) = &mut self.answer {
            a.collect(ev.clone());
        }
        self.enc.event(ev, &mut self.buf);
    }

    /// A progress event, when the client asked for them.
    pub fn progress(&mut self, p: &Progress<'_>) {
        if self.progress {
            self.enc.progress(p, &mut self.buf);
        }
    }

    /// The end of a good stream: the dialect's closing events with `n1`
    /// (its costs filled in from the meter) and the usage.
    pub fn finish(&mut self, mut meta: N1Meta, usage: Usage) {
        self.finished = true;
        if let Some(meter) = self.meter {
            meter.annotate(&mut meta);
        }
        self.enc.finish(&meta, &usage, &mut self.buf);
        if self.answer.is_some() {
            self.ending = Some((meta, usage));
        }
    }

    /// Whether anything waits to be sent.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn keep_alive(&mut self) {
        self.enc.keep_alive(&mut self.buf);
    }

    /// Send what the encoder wrote.
    pub async fn flush(&mut self) -> Result<(), ClientGone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buf);
        self.sink.send(bytes).await.map_err(|_| ClientGone)
    }

    /// End the stream with an error (the headers have left: an error event).
    pub async fn fail(&mut self, e: &N1Error) -> Result<(), ClientGone> {
        self.enc.fail(e, &mut self.buf);
        self.flush().await
    }
}

/// The ensemble's answer to a non-streaming request.
pub struct Answer {
    pub completion: Completion,
    /// Over every call, panel and summary.
    pub usage: Usage,
    pub meta: N1Meta,
    /// The summary failed and the best panel answer stands in.
    pub fallback: bool,
}

/// The path a request takes: straight to one model when asked for, for a
/// front-end's background task, or for a tool turn (`tool_turns`); else the
/// panel and the summary.
pub fn route(ens: &Ensemble, req: &Request) -> Route {
    if req.direct {
        return Route::Direct;
    }
    let marked = |text: &str| {
        let text = text.to_ascii_lowercase();
        ens.task_markers.iter().any(|m| text.contains(m.as_str()))
    };
    let last_user = req.messages.iter().rev().find(|m| m.role == Role::User);
    if last_user.is_some_and(|m| marked(&m.text())) || req.messages.iter().any(|m| m.role.is_system() && marked(&m.text())) {
        return Route::Task;
    }
    let tool_turn = match ens.tool_turns {
        ToolTurns::Ensemble => false,
        ToolTurns::Summary => !req.params.tools.is_empty(),
        ToolTurns::Auto => req.messages.last().is_some_and(|m| matches!(m.role, Role::Tool | Role::Function)),
    };
    if tool_turn {
        Route::Summary
    } else {
        Route::Ensemble
    }
}

fn deadline_of(rt: &impl Runtime, lineup: &Lineup) -> f64 {
    rt.now_ms() + lineup.ens.policy.request_timeout_ms as f64
}

/// Non-streaming: the panel, then the summary (falling back along the list).
pub async fn complete<R: Runtime>(rt: &R, lineup: &Lineup<'_>, req: &Request) -> Result<Answer, N1Error> {
    let deadline = deadline_of(rt, lineup);
    let panel = match panel::run(rt, lineup, req, deadline, None).await {
        Ok(p) => p,
        Err(panel::Stop::Failed(e)) => return Err(e),
        Err(panel::Stop::Gone) => unreachable!("without a stream the client cannot be seen leaving"),
    };
    match summary::run(rt, lineup, req, &panel, deadline, None).await {
        Ok(summary::Done::Answer(mut a)) => {
            if let Some(meter) = rt.meter() {
                meter.annotate(&mut a.meta);
            }
            Ok(a)
        }
        Ok(summary::Done::Streamed) => unreachable!("without a stream nothing is streamed"),
        Err(summary::Stop::Failed(e)) => Err(e),
        Err(summary::Stop::Gone) => unreachable!("without a stream the client cannot be seen leaving"),
    }
}

/// Streaming: the dialect's opening goes out at once, keep-alives (and
/// progress events when asked for) while the panel works, then the summary's
/// stream relayed event by event. Every path ends the stream properly, after an
/// error event if something failed. When the client leaves, every open
/// upstream request is aborted.
pub async fn stream<R: Runtime>(rt: &R, lineup: &Lineup<'_>, req: &Request, out: &mut Out<'_>) {
    if stream_inner(rt, lineup, req, out).await.is_err() {
        rt.abort_in_flight();
    }
}

async fn stream_inner<R: Runtime>(rt: &R, lineup: &Lineup<'_>, req: &Request, out: &mut Out<'_>) -> Result<(), ClientGone> {
    let deadline = deadline_of(rt, lineup);
    out.enc.start(&mut out.buf);
    out.flush().await?;
    let panel = match panel::run(rt, lineup, req, deadline, Some(out)).await {
        Ok(p) => p,
        Err(panel::Stop::Gone) => return Err(ClientGone),
        Err(panel::Stop::Failed(e)) => return out.fail(&e).await,
    };
    match summary::run(rt, lineup, req, &panel, deadline, Some(out)).await {
        Ok(_) => Ok(()),
        Err(summary::Stop::Gone) => Err(ClientGone),
        Err(summary::Stop::Failed(e)) => out.fail(&e).await,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cost_tests;
