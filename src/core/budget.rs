//! Budgets: what a client key (or anonymous use) may spend per UTC day and
//! month, and the accounting that enforces it. Pure: the edge keeps one
//! `Ledger` per key in a Durable Object (`edge/budget.rs`), which applies the
//! operations below one at a time (`apply`), so concurrent requests are
//! serialized.
//!
//! Before its fan-out a request *reserves* an estimate of what it can cost
//! (`estimate`: every call the ensemble makes, at its output cap and its
//! model's price); the reservation is refused when the settled spend of the
//! window, plus every reservation still held, plus this one would pass a
//! limit. After the reply the request *settles*: its hold is replaced by what
//! it really spent. A hold never settled (an instance that died, a request
//! cancelled) expires after the request's hard ceiling and is charged as
//! reserved. So the spend of a window passes a limit only by what requests
//! spent beyond their own reservations.

use serde::Serialize;
use serde_json::Value;

use crate::core::config::Lineup;
use crate::core::cost::{round, tokens_of_chars, Spend};
use crate::core::request::{Content, Part, Request};
use crate::core::usage::Usage;

/// Limits of one key; absent: none.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub usd_per_day: Option<f64>,
    pub usd_per_month: Option<f64>,
    /// Input + output tokens.
    pub tokens_per_day: Option<u64>,
}

const LIMIT_FIELDS: &str = "`usd_per_day`, `usd_per_month`, `tokens_per_day` (numbers ≥ 0)";

impl Limits {
    /// `{"usd_per_day": 5, "usd_per_month": 100, "tokens_per_day": 2000000}`;
    /// errors never quote the value.
    pub fn from_json(v: &Value) -> Result<Limits, String> {
        let mut l = [None; 3];
        let obj = v.as_object().filter(|o| {
            o.iter().all(|(k, n)| match LIMITS.iter().position(|l| l == k) {
                // tokens_per_day is a whole number.
                Some(i) => n.is_null() || n.as_f64().is_some_and(|n| n >= 0.0 && (i < 2 || n.fract() == 0.0)) && { l[i] = n.as_f64(); true },
                None => false,
            })
        });
        match obj {
            Some(_) => Ok(Limits { usd_per_day: l[0], usd_per_month: l[1], tokens_per_day: l[2].map(|t| t as u64) }),
            None => Err(format!("a budget must be an object with {LIMIT_FIELDS}")),
        }
    }

    pub fn has_usd(&self) -> bool {
        self.usd_per_day.is_some() || self.usd_per_month.is_some()
    }
}

// ---- the calendar (UTC)

const DAY_MS: f64 = 86_400_000.0;

fn days(ms: f64) -> i64 {
    (ms / DAY_MS).floor() as i64
}

/// Year, month (1-12), day of a day number since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// The day number of a date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - (m <= 2) as i64;
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The start of the UTC day of `ms` (milliseconds since the epoch).
pub fn day_start(ms: f64) -> f64 {
    days(ms) as f64 * DAY_MS
}

/// The start of the next UTC day.
pub fn next_day(ms: f64) -> f64 {
    day_start(ms) + DAY_MS
}

/// The start of the UTC month of `ms`.
pub fn month_start(ms: f64) -> f64 {
    let (y, m, _) = civil(days(ms));
    days_from_civil(y, m, 1) as f64 * DAY_MS
}

/// The start of the next UTC month.
pub fn next_month(ms: f64) -> f64 {
    let (y, m, _) = civil(days(ms));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) as f64 * DAY_MS
}

/// ISO 8601 in UTC, to the second: `2026-12-01T00:00:00Z`.
pub fn iso(ms: f64) -> String {
    let (y, m, d) = civil(days(ms));
    let s = ((ms - day_start(ms)) / 1000.0).floor() as u64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// `0.0123` for 0.0123 USD (`decimals` at most, trailing zeros dropped).
pub fn usd_text(usd: f64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let units = (usd.max(0.0) * scale as f64).round() as u64;
    // The fraction's digits behind a 1 (keeps its leading zeros), the 1 dropped.
    let fraction = (scale + units % scale).to_string();
    let fraction = fraction[1..].trim_end_matches('0');
    let mut s = (units / scale).to_string();
    if !fraction.is_empty() {
        s.push('.');
        s.push_str(fraction);
    }
    s
}

// ---- the ledger

/// What one window (a day or a month) spent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Window {
    /// Its start, ms since the epoch.
    pub start: f64,
    pub spent: Spend,
    pub requests: u64,
}

impl Window {
    fn add(&mut self, s: &Spend) {
        self.spent.add(s);
        self.requests += 1;
    }
}

/// A reservation of a request in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold {
    /// The request's number (random, chosen by the edge).
    pub id: f64,
    pub need: Spend,
    /// When it is charged as reserved if the request never settled.
    pub expires: f64,
}

/// How many ids of expired holds are remembered (a late settlement of one is ignored: it was charged).
const EXPIRED_KEPT: usize = 32;

/// One key's accounting: this day, this month, the holds in flight.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ledger {
    pub day: Window,
    pub month: Window,
    pub holds: Vec<Hold>,
    pub expired: Vec<f64>,
}

/// A reservation refused: which limit (`LIMITS[which]`), its value, what was
/// used and held in its window, what the request needed, when it resets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refused {
    pub which: usize,
    pub limit: f64,
    pub used: f64,
    pub held: f64,
    pub need: f64,
    pub resets_at: f64,
}

/// The limits' names, in `Refused::which` order.
pub const LIMITS: [&str; 3] = ["usd_per_day", "usd_per_month", "tokens_per_day"];

impl Refused {
    /// What the client is told: which limit, the numbers, when it resets.
    pub fn message(&self) -> String {
        let tokens = self.which == 2;
        let (unit, per) = if tokens { ("tokens", "day") } else { ("USD", if self.which == 0 { "day" } else { "month" }) };
        let n = |x: f64| if tokens { (x as u64).to_string() } else { usd_text(x, 6) };
        format!(
            "This key's budget of {} {unit} per {per} (`{}`) would be exceeded: {} {unit} used, {} {unit} reserved by requests in flight, and this request may need up to {} {unit}. It resets at {}.",
            n(self.limit),
            LIMITS[self.which.min(2)],
            n(self.used),
            n(self.held),
            n(self.need),
            iso(self.resets_at)
        )
    }
}

impl Ledger {
    /// The ledger as a flat list of numbers (what the Durable Object stores):
    /// day and month (start, usd, input, output, requests), the number of
    /// holds, each hold (id, usd, input, output, expires), the expired ids.
    pub fn to_numbers(&self) -> Vec<f64> {
        let mut v = Vec::with_capacity(11 + 5 * self.holds.len() + self.expired.len());
        for w in [&self.day, &self.month] {
            v.extend([w.start, w.spent.usd, w.spent.input_tokens as f64, w.spent.output_tokens as f64, w.requests as f64]);
        }
        v.push(self.holds.len() as f64);
        for h in &self.holds {
            v.extend([h.id, h.need.usd, h.need.input_tokens as f64, h.need.output_tokens as f64, h.expires]);
        }
        v.extend(&self.expired);
        v
    }

    pub fn from_numbers(v: &[f64]) -> Ledger {
        let mut r = Reader(v.iter());
        let (day, month) = (r.window(), r.window());
        let holds = (0..r.next() as usize).map(|_| Hold { id: r.next(), need: r.spend(), expires: r.next() }).collect();
        Ledger { day, month, holds, expired: r.0.copied().collect() }
    }

    /// The windows of `now` (they only move forward: a clock a little behind
    /// another one's charges the current window), and expired holds charged.
    fn roll(&mut self, now: f64) {
        if day_start(now) > self.day.start {
            self.day = Window { start: day_start(now), ..Window::default() };
        }
        if month_start(now) > self.month.start {
            self.month = Window { start: month_start(now), ..Window::default() };
        }
        let (expired, kept): (Vec<Hold>, Vec<Hold>) = self.holds.iter().partition(|h| h.expires <= now);
        self.holds = kept;
        for h in expired {
            self.charge(&h.need);
            self.expired.push(h.id);
        }
        let over = self.expired.len().saturating_sub(EXPIRED_KEPT);
        self.expired.drain(..over);
    }

    fn charge(&mut self, s: &Spend) {
        self.day.add(s);
        self.month.add(s);
    }

    /// Hold `need` for request `id` unless that would pass a limit: the
    /// window's settled spend, plus every hold, plus `need`.
    pub fn reserve(&mut self, now: f64, limits: &Limits, id: f64, need: Spend, expires: f64) -> Result<(), Refused> {
        self.roll(now);
        let mut held = Spend::default();
        for h in &self.holds {
            held.add(&h.need);
        }
        let checks = [
            (limits.usd_per_day, self.day.spent.usd, held.usd, need.usd, next_day(self.day.start)),
            (limits.usd_per_month, self.month.spent.usd, held.usd, need.usd, next_month(self.month.start)),
            (limits.tokens_per_day.map(|t| t as f64), self.day.spent.tokens() as f64, held.tokens() as f64, need.tokens() as f64, next_day(self.day.start)),
        ];
        for (which, (limit, used, held, need, resets_at)) in checks.into_iter().enumerate() {
            if let Some(limit) = limit.filter(|l| round(used + held + need) > *l) {
                return Err(Refused { which, limit, used, held, need, resets_at });
            }
        }
        self.holds.push(Hold { id, need, expires });
        Ok(())
    }

    /// A request ended having spent `spent`: its hold (id 0: it made none) is
    /// released and the spend charged to this day and month. A hold that
    /// already expired was charged as reserved; its late settlement is ignored.
    pub fn settle(&mut self, now: f64, id: f64, spent: Spend) {
        self.roll(now);
        if id != 0.0 {
            if let Some(i) = self.holds.iter().position(|h| h.id == id) {
                self.holds.remove(i);
            } else if self.expired.contains(&id) {
                return;
            }
        }
        self.charge(&spent);
    }
}

/// Reads a ledger's numbers in order (0 past the end).
struct Reader<'a>(std::slice::Iter<'a, f64>);

impl Reader<'_> {
    fn next(&mut self) -> f64 {
        self.0.next().copied().unwrap_or(0.0)
    }

    fn spend(&mut self) -> Spend {
        Spend { usd: self.next(), input_tokens: self.next() as u64, output_tokens: self.next() as u64 }
    }

    fn window(&mut self) -> Window {
        Window { start: self.next(), spent: self.spend(), requests: self.next() as u64 }
    }
}

// ---- the Durable Object's protocol: JSON arrays of numbers

/// Numbers from a JSON array (anything else: none; a non-number: 0).
pub fn numbers(text: &str) -> Vec<f64> {
    match serde_json::from_str(text) {
        Ok(Value::Array(a)) => a.iter().map(|n| n.as_f64().unwrap_or(0.0)).collect(),
        _ => Vec::new(),
    }
}

/// Numbers as a JSON array.
pub fn numbers_json(v: &[f64]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

const RESERVE: f64 = 1.0;
const SETTLE: f64 = 2.0;
const USAGE: f64 = 3.0;

fn op(code: f64, now: f64, id: f64, s: &Spend, expires: f64, l: &Limits) -> String {
    let none = -1.0;
    numbers_json(&[
        code,
        now,
        id,
        s.usd,
        s.input_tokens as f64,
        s.output_tokens as f64,
        expires,
        l.usd_per_day.unwrap_or(none),
        l.usd_per_month.unwrap_or(none),
        l.tokens_per_day.map_or(none, |t| t as f64),
    ])
}

/// `reserve`: hold `need` for request `id` until `expires`.
pub fn reserve_op(now: f64, limits: &Limits, id: f64, need: &Spend, expires: f64) -> String {
    op(RESERVE, now, id, need, expires, limits)
}

/// `settle`: request `id` (0: it held nothing) spent `spent`.
pub fn settle_op(now: f64, id: f64, spent: &Spend) -> String {
    op(SETTLE, now, id, spent, 0.0, &Limits::default())
}

/// `usage`: the day's and the month's windows.
pub fn usage_op(now: f64) -> String {
    op(USAGE, now, 0.0, &Spend::default(), 0.0, &Limits::default())
}

/// Apply one operation to `ledger`; the reply: `reserve` `[0]` or the
/// refusal (`[which, limit, used, held, need, resets_at]`), `settle` `[0]`,
/// `usage` the windows (`[start, usd, input, output, requests]` of the day,
/// then of the month).
pub fn apply(ledger: &mut Ledger, op: &str) -> String {
    let v = numbers(op);
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    let limit = |i: usize| Some(at(i)).filter(|l| *l >= 0.0);
    let spend = Spend { usd: at(3), input_tokens: at(4) as u64, output_tokens: at(5) as u64 };
    let now = at(1);
    let reply = match at(0) {
        RESERVE => {
            let limits = Limits { usd_per_day: limit(7), usd_per_month: limit(8), tokens_per_day: limit(9).map(|t| t as u64) };
            match ledger.reserve(now, &limits, at(2), spend, at(6)) {
                Ok(()) => vec![0.0],
                Err(r) => vec![r.which as f64 + 1.0, r.limit, r.used, r.held, r.need, r.resets_at],
            }
        }
        SETTLE => {
            ledger.settle(now, at(2), spend);
            vec![0.0]
        }
        _ => {
            ledger.roll(now);
            let mut v = ledger.to_numbers();
            v.truncate(10);
            v
        }
    };
    numbers_json(&reply)
}

/// The refusal in a `reserve` reply, if it is one.
pub fn refusal(reply: &[f64]) -> Option<Refused> {
    let at = |i: usize| reply.get(i).copied().unwrap_or(0.0);
    (at(0) >= 1.0).then(|| Refused { which: at(0) as usize - 1, limit: at(1), used: at(2), held: at(3), need: at(4), resets_at: at(5) })
}

/// `GET /v1/n1/usage`'s body, from a `usage` reply.
pub fn report(reply: &[f64], limits: &Limits, key: &str) -> String {
    let w = Ledger::from_numbers(&[reply, &[0.0]].concat());
    let period = |w: &Window, limit_usd, limit_tokens, resets_at| Period {
        usd: w.spent.usd,
        input_tokens: w.spent.input_tokens,
        output_tokens: w.spent.output_tokens,
        requests: w.requests,
        limit_usd,
        limit_tokens,
        resets_at: iso(resets_at),
    };
    let report = Report {
        key,
        day: period(&w.day, limits.usd_per_day, Some(limits.tokens_per_day), next_day(w.day.start)),
        month: period(&w.month, limits.usd_per_month, None, next_month(w.month.start)),
    };
    serde_json::to_string(&report).unwrap_or_default()
}

#[derive(Serialize)]
struct Report<'a> {
    key: &'a str,
    day: Period,
    month: Period,
}

#[derive(Serialize)]
struct Period {
    usd: f64,
    input_tokens: u64,
    output_tokens: u64,
    requests: u64,
    limit_usd: Option<f64>,
    /// A day's only (`null` when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_tokens: Option<Option<u64>>,
    resets_at: String,
}

// ---- what a request reserves

/// Characters an image counts for in an estimate (about 2,000 tokens).
const IMAGE_CHARS: usize = 8_000;
/// Tokens of the synthesis instructions and the fences around each answer.
const SYNTHESIS_TOKENS: u64 = 600;

/// The most a request can cost, by its calls: every panel member of every
/// layer and the summary (the costliest of its list), each producing its
/// output cap (the client's `max_tokens`/`max_completion_tokens`, else the
/// model's, else the ensemble's `reserve_output_tokens`), its input the
/// request body's characters / 4 (`body_chars`; images count as 2,000 tokens,
/// whatever their size; a continued conversation's history is counted too),
/// and for the summary and later layers the panel's answers. `Err` names a
/// model without a price when `usd` is needed.
pub fn estimate(lineup: &Lineup<'_>, req: &Request, body_chars: usize, usd: bool) -> Result<Spend, String> {
    let ens = lineup.ens;
    let input = tokens_of_chars(input_chars(req, body_chars));
    let cap = |m: &crate::core::config::ModelSpec| req.params.output_cap().or(m.max_tokens).unwrap_or(ens.policy.reserve_output_tokens);
    let answers: u64 = lineup.panel.iter().map(|m| cap(m).min(tokens_of_chars(ens.policy.max_answer_chars))).sum();
    let synthesis = if lineup.panel.is_empty() { 0 } else { answers + SYNTHESIS_TOKENS + tokens_of_chars(ens.synthesis_prompt.as_ref().map_or(0, String::len)) };
    let mut total = Spend::default();
    let mut add = |m: &crate::core::config::ModelSpec, u: Usage| -> Result<(), String> {
        let cost = match (m.price, usd) {
            (Some(p), _) => p.of(&u),
            (None, false) => 0.0,
            (None, true) => return Err(m.model.clone()),
        };
        total.add(&Spend { usd: cost, input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens });
        Ok(())
    };
    for layer in 1..=ens.layers {
        for m in lineup.panel {
            add(m, Usage::new(input + if layer > 1 { synthesis } else { 0 }, cap(m)))?;
        }
    }
    // The summary: the costliest of the list (a fallback may answer).
    let summary = |m: &crate::core::config::ModelSpec| Usage::new(input + synthesis, cap(m));
    let costliest = lineup
        .summary
        .iter()
        .max_by(|a, b| {
            let c = |m: &crate::core::config::ModelSpec| m.price.map_or(f64::INFINITY, |p| p.of(&summary(m)));
            c(a).total_cmp(&c(b)).then_with(|| summary(a).total_tokens.cmp(&summary(b).total_tokens))
        })
        .ok_or_else(String::new)?;
    add(costliest, summary(costliest))?;
    Ok(total)
}

/// Characters of the request's input: the body without its images' data,
/// each image as `IMAGE_CHARS`; at least the text of the messages (which may
/// hold a stored conversation the body only names).
fn input_chars(req: &Request, body_chars: usize) -> usize {
    let (mut images, mut image_bytes) = (0, 0);
    for m in &req.messages {
        if let Content::Parts(parts) = &m.content {
            for p in parts {
                if let Part::Image { url, .. } = p {
                    images += 1;
                    image_bytes += url.len();
                }
            }
        }
    }
    body_chars.saturating_sub(image_bytes).max(req.text_chars()) + images * IMAGE_CHARS
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
