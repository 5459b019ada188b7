//! What calls cost. A model may carry a price (USD per million input, output
//! and cached input tokens); a call's cost is its usage at that price. The
//! `Meter` records every upstream call of a request as it starts and ends, so
//! what a request spent is known however it ended: answered, failed, cut off
//! by a quorum or a deadline, or abandoned by a client that left. A call the
//! provider reported no usage for is estimated from what was sent and received
//! (characters / 4) and marked as estimated; a call the provider refused with
//! an error status before answering costs nothing.
//!
//! The meter feeds three things: the `n1` costs of a reply (`annotate`), the
//! spend settled against a key's budget (`spend`), and the metrics data points
//! of each call (`charges`).

use std::cell::{Cell, Ref, RefCell};

use crate::core::config::{ModelSpec, Provider};
use crate::core::ensemble::report::{MemberReport, N1Meta};
use crate::core::error::{Failure, FailureKind};
use crate::core::events::{Completion, Event};
use crate::core::usage::Usage;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Prompt tokens read from the provider's cache; `None`: the input price
    /// (the config gives Anthropic models 0.1 × input).
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the provider's cache for five minutes; `None`:
    /// the input price (the config gives Anthropic models 1.25 × input).
    pub cache_write_input: Option<f64>,
}

/// Anthropic bills a one-hour cache write at 2 × input, a five-minute one at
/// 1.25 ×: the one-hour price is the five-minute price × 1.6.
pub const CACHE_WRITE_1H_FACTOR: f64 = 1.6;
/// Anthropic's five-minute cache write, × input.
pub const ANTHROPIC_CACHE_WRITE_FACTOR: f64 = 1.25;
/// Anthropic's cache read, × input.
pub const ANTHROPIC_CACHE_READ_FACTOR: f64 = 0.1;

impl Price {
    /// The cost of `u` in USD.
    pub fn of(&self, u: &Usage) -> f64 {
        let p = u.prompt_split();
        let write = self.cache_write_input.unwrap_or(self.input);
        let per_m = p.plain as f64 * self.input
            + p.read as f64 * self.cached_input.unwrap_or(self.input)
            + p.written_5m as f64 * write
            + p.written_1h as f64 * write * CACHE_WRITE_1H_FACTOR
            + u.completion_tokens as f64 * self.output;
        round(per_m / 1e6)
    }
}

/// Rounded to 10⁻¹² USD, so sums print as the numbers one computes by hand.
pub fn round(usd: f64) -> f64 {
    (usd * 1e12).round() / 1e12
}

/// Tokens estimated from characters (about four per token in English text).
pub fn tokens_of_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Characters of answer an event carries (for estimates of cut streams).
pub fn chars_of(ev: &Event<'_>) -> usize {
    match ev {
        Event::Text(t) | Event::Reasoning(_, t) => t.len(),
        Event::ToolCall { arguments, name, .. } => arguments.len() + name.as_ref().map_or(0, |n| n.len()),
        _ => 0,
    }
}

/// How a metered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Still open when the request ended: aborted (quorum, deadline, a cut
    /// stream, a client that left).
    Open,
    Answered,
    /// The upstream answered this error status before answering the question.
    Refused(u16),
    /// Anything else: a timeout, a network error, an unreadable 2xx reply.
    Failed(FailureKind),
}

/// One upstream call.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// A summary call (else a panel member's).
    pub summary: bool,
    /// Panel layer (1-based) and index of the member.
    pub layer: usize,
    pub index: usize,
    pub model: String,
    pub provider: Provider,
    pub price: Option<Price>,
    pub started_ms: f64,
    pub ended_ms: Option<f64>,
    pub attempts: u32,
    pub end: End,
    sent_chars: usize,
    out_chars: usize,
    usage: Option<Usage>,
}

impl Charge {
    /// The tokens it used, and whether they are estimated: as the provider
    /// reported them; none when it refused the call; else estimated from the
    /// characters sent and received.
    pub fn usage(&self) -> (Usage, bool) {
        match (self.usage, self.end) {
            (Some(u), _) => (u, false),
            (None, End::Refused(_)) => (Usage::default(), false),
            (None, _) => (Usage::new(tokens_of_chars(self.sent_chars), tokens_of_chars(self.out_chars)), true),
        }
    }

    /// USD; `None` when the model has no price.
    pub fn cost(&self) -> Option<f64> {
        self.price.map(|p| p.of(&self.usage().0))
    }

    /// `ok`, `error`, `timeout`, `cancelled`, `model_not_found`, `refused` or
    /// `aborted` (still open at the end).
    pub fn status(&self) -> &'static str {
        match self.end {
            End::Open => "aborted",
            End::Answered => "ok",
            End::Refused(_) => "refused",
            End::Failed(k) => k.as_str(),
        }
    }

    /// The upstream's HTTP status when it refused the call (0 otherwise).
    pub fn http_status(&self) -> u16 {
        match self.end {
            End::Refused(s) => s,
            End::Answered => 200,
            _ => 0,
        }
    }
}

/// What a request spent, to settle against a budget.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Spend {
    pub usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Spend {
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    pub fn add(&mut self, o: &Spend) {
        self.usd = round(self.usd + o.usd);
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
    }
}

/// Every upstream call of one request, as it starts and ends.
#[derive(Debug, Default)]
pub struct Meter {
    layer: Cell<usize>,
    charges: RefCell<Vec<Charge>>,
}

impl Meter {
    /// Panel calls opened from now on belong to this layer (1-based).
    pub fn layer(&self, layer: usize) {
        self.layer.set(layer);
    }

    /// A call is about to be made with `body`; its id.
    pub fn open(&self, summary: bool, index: usize, m: &ModelSpec, body: &str, now: f64) -> usize {
        let mut charges = self.charges.borrow_mut();
        charges.push(Charge {
            summary,
            layer: if summary { 0 } else { self.layer.get().max(1) },
            index,
            model: m.model.clone(),
            provider: m.provider,
            price: m.price,
            started_ms: now,
            ended_ms: None,
            attempts: 0,
            end: End::Open,
            sent_chars: body.len(),
            out_chars: 0,
            usage: None,
        });
        charges.len() - 1
    }

    /// `chars` of answer more arrived on call `id`.
    pub fn output(&self, id: usize, chars: usize) {
        if let Some(c) = self.charges.borrow_mut().get_mut(id) {
            c.out_chars += chars;
        }
    }

    /// Call `id` ended: answered (its usage, if the provider reported one) or failed.
    pub fn close(&self, id: usize, now: f64, attempts: u32, outcome: Result<Option<Usage>, &Failure>) {
        let mut charges = self.charges.borrow_mut();
        let Some(c) = charges.get_mut(id) else { return };
        c.ended_ms = Some(now);
        c.attempts = attempts;
        match outcome {
            Ok(usage) => {
                c.end = End::Answered;
                c.usage = usage;
            }
            Err(f) => {
                c.end = match (f.status, f.kind) {
                    (Some(s), FailureKind::Error | FailureKind::ModelNotFound) if s >= 400 => End::Refused(s),
                    (_, k) => End::Failed(k),
                };
            }
        }
    }

    pub fn charges(&self) -> Ref<'_, Vec<Charge>> {
        self.charges.borrow()
    }

    /// What every call spent (unpriced calls add tokens, no USD).
    pub fn spend(&self) -> Spend {
        let mut s = Spend::default();
        for c in self.charges.borrow().iter() {
            let (u, _) = c.usage();
            s.add(&Spend { usd: c.cost().unwrap_or(0.0), input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens });
        }
        s
    }

    /// Whether every call made has a price.
    pub fn priced(&self) -> bool {
        self.charges.borrow().iter().all(|c| c.price.is_some())
    }

    /// The costs of `meta`: each panel member's (every layer), the summary
    /// phase's (fallbacks that failed included) and the total. `None` where a
    /// call's model has no price.
    pub fn annotate(&self, meta: &mut N1Meta) {
        let charges = self.charges.borrow();
        // The calls of one panel member (`layer`, `index`), of the summary
        // phase (layer 0) or all (`usize::MAX`).
        let total = |layer: usize, index: usize| {
            let mut usd = Some(0.0);
            let mut estimated = false;
            for c in charges.iter().filter(|c| layer == usize::MAX || (c.layer == layer && (c.summary || c.index == index))) {
                estimated |= c.usage().1;
                usd = usd.zip(c.cost()).map(|(a, b)| a + b);
            }
            (usd.map(round), estimated)
        };
        let member = |layer: usize, reports: &mut [MemberReport]| {
            for (index, r) in reports.iter_mut().enumerate() {
                (r.cost_usd, r.cost_estimated) = total(layer, index);
            }
        };
        member(meta.layers.as_ref().map_or(1, Vec::len), &mut meta.panel);
        for (l, reports) in meta.layers.iter_mut().flatten().enumerate() {
            member(l + 1, reports);
        }
        (meta.summary.cost_usd, meta.summary.cost_estimated) = total(0, 0);
        (meta.cost_usd, meta.cost_estimated) = total(usize::MAX, 0);
    }
}

/// Opens a charge on `meter` (the runtime's, if it has one).
pub fn open(meter: Option<&Meter>, summary: bool, index: usize, m: &ModelSpec, body: &str, now: f64) -> Option<usize> {
    meter.map(|meter| meter.open(summary, index, m, body, now))
}

/// Closes charge `id` with a call's outcome.
pub fn close(meter: Option<&Meter>, id: Option<usize>, now: f64, attempts: u32, outcome: Result<&Completion, &Failure>) {
    if let (Some(meter), Some(id)) = (meter, id) {
        if let Ok(c) = outcome {
            meter.output(id, c.text.len());
        }
        meter.close(id, now, attempts, outcome.map(|c| c.usage));
    }
}

/// `chars` of answer more arrived on charge `id` (a stream).
pub fn output(meter: Option<&Meter>, id: Option<usize>, chars: usize) {
    if let (Some(meter), Some(id)) = (meter, id) {
        meter.output(id, chars);
    }
}

/// Closes the charge of a stream with its usage (or its failure).
pub fn close_stream(meter: Option<&Meter>, id: Option<usize>, now: f64, attempts: u32, outcome: Result<Option<Usage>, &Failure>) {
    if let (Some(meter), Some(id)) = (meter, id) {
        meter.close(id, now, attempts, outcome);
    }
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
