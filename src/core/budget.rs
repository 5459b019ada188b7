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
use crate::core::request::{Content, Part, Request, Tool};
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
        let wrong = || format!("a budget must be an object with {LIMIT_FIELDS}");
        let obj = v.as_object().ok_or_else(wrong)?;
        if obj.keys().any(|k| !matches!(k.as_str(), "usd_per_day" | "usd_per_month" | "tokens_per_day")) {
            return Err(wrong());
        }
        let usd = |k: &str| match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(n) => n.as_f64().filter(|n| *n >= 0.0 && n.is_finite()).map(Some).ok_or_else(wrong),
        };
        let tokens_per_day = match obj.get("tokens_per_day") {
            None | Some(Value::Null) => None,
            Some(n) => Some(n.as_u64().ok_or_else(wrong)?),
        };
        Ok(Limits { usd_per_day: usd("usd_per_day")?, usd_per_month: usd("usd_per_month")?, tokens_per_day })
    }

    pub fn has_usd(&self) -> bool {
        self.usd_per_day.is_some() || self.usd_per_month.is_some()
    }

    fn to_json(self) -> Value {
        serde_json::json!({"usd_per_day": self.usd_per_day, "usd_per_month": self.usd_per_month, "tokens_per_day": self.tokens_per_day})
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

/// `0.0123` for 0.0123 USD (six decimals at most, trailing zeros dropped).
pub fn usd_text(usd: f64) -> String {
    let micro = (usd.max(0.0) * 1e6).round() as u64;
    let mut s = format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000);
    while s.ends_with('0') {
        s.pop();
    }
    s.trim_end_matches('.').to_owned()
}

// ---- the ledger

/// What one window (a day or a month) spent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Window {
    /// Its start, ms since the epoch.
    pub start: f64,
    pub usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests: u64,
}

impl Window {
    fn add(&mut self, s: &Spend) {
        self.usd = round(self.usd + s.usd);
        self.input_tokens += s.input_tokens;
        self.output_tokens += s.output_tokens;
        self.requests += 1;
    }

    fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    fn from_json(v: Option<&Value>) -> Window {
        let f = |k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_f64).unwrap_or(0.0);
        let n = |k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_u64).unwrap_or(0);
        Window { start: f("start"), usd: f("usd"), input_tokens: n("input_tokens"), output_tokens: n("output_tokens"), requests: n("requests") }
    }
}

/// A reservation of a request in flight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hold {
    pub id: String,
    pub usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// When it is charged as reserved if the request never settled.
    pub expires: f64,
}

impl Hold {
    fn spend(&self) -> Spend {
        Spend { usd: self.usd, input_tokens: self.input_tokens, output_tokens: self.output_tokens }
    }
}

/// How many ids of expired holds are remembered (a late settlement of one is ignored: it was charged).
const EXPIRED_KEPT: usize = 32;

/// One key's accounting: this day, this month, the holds in flight.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Ledger {
    pub day: Window,
    pub month: Window,
    pub holds: Vec<Hold>,
    pub expired: Vec<String>,
}

/// A reservation refused: which limit, and when it resets.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    pub limit: &'static str,
    pub message: String,
    pub resets_at: f64,
}

impl Ledger {
    pub fn from_json(text: &str) -> Ledger {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let list = |k: &str| v.get(k).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        Ledger {
            day: Window::from_json(v.get("day")),
            month: Window::from_json(v.get("month")),
            holds: list("holds")
                .iter()
                .map(|h| {
                    let w = Window::from_json(Some(h));
                    let expires = h.get("expires").and_then(Value::as_f64).unwrap_or(0.0);
                    Hold { id: str_of(h, "id"), usd: w.usd, input_tokens: w.input_tokens, output_tokens: w.output_tokens, expires }
                })
                .collect(),
            expired: list("expired").iter().filter_map(|e| e.as_str().map(str::to_owned)).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
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
        let (expired, kept): (Vec<Hold>, Vec<Hold>) = std::mem::take(&mut self.holds).into_iter().partition(|h| h.expires <= now);
        self.holds = kept;
        for h in expired {
            self.charge(&h.spend());
            self.expired.push(h.id);
        }
        let over = self.expired.len().saturating_sub(EXPIRED_KEPT);
        self.expired.drain(..over);
    }

    fn charge(&mut self, s: &Spend) {
        self.day.add(s);
        self.month.add(s);
    }

    fn held(&self) -> Spend {
        let mut s = Spend::default();
        for h in &self.holds {
            s.add(&h.spend());
        }
        s
    }

    /// Hold `need` for request `id` unless that would pass a limit.
    pub fn reserve(&mut self, now: f64, limits: &Limits, id: &str, need: Spend, expires: f64) -> Result<(), Exceeded> {
        self.roll(now);
        let held = self.held();
        let usd_check = |limit: Option<f64>, name: &'static str, per: &str, w: &Window, resets_at: f64| match limit {
            Some(limit) if round(w.usd + held.usd + need.usd) > limit => Err(Exceeded {
                limit: name,
                message: format!(
                    "This key's budget of {} USD per {per} (`{name}`) would be exceeded: {} USD spent, {} USD reserved by requests in flight, and this request may cost up to {} USD. It resets at {}.",
                    usd_text(limit),
                    usd_text(w.usd),
                    usd_text(held.usd),
                    usd_text(need.usd),
                    iso(resets_at)
                ),
                resets_at,
            }),
            _ => Ok(()),
        };
        usd_check(limits.usd_per_day, "usd_per_day", "day", &self.day, next_day(self.day.start))?;
        usd_check(limits.usd_per_month, "usd_per_month", "month", &self.month, next_month(self.month.start))?;
        if let Some(limit) = limits.tokens_per_day {
            if self.day.tokens() + held.tokens() + need.tokens() > limit {
                let resets_at = next_day(self.day.start);
                return Err(Exceeded {
                    limit: "tokens_per_day",
                    message: format!(
                        "This key's budget of {limit} tokens per day (`tokens_per_day`) would be exceeded: {} tokens used, {} reserved by requests in flight, and this request may use up to {}. It resets at {}.",
                        self.day.tokens(),
                        held.tokens(),
                        need.tokens(),
                        iso(resets_at)
                    ),
                    resets_at,
                });
            }
        }
        self.holds.push(Hold { id: id.to_owned(), usd: need.usd, input_tokens: need.input_tokens, output_tokens: need.output_tokens, expires });
        Ok(())
    }

    /// A request ended having spent `spent`: its hold (if it made one) is
    /// released and the spend charged to this day and month. A hold that
    /// already expired was charged as reserved; its late settlement is ignored.
    pub fn settle(&mut self, now: f64, id: &str, spent: Spend) {
        self.roll(now);
        if !id.is_empty() {
            if let Some(i) = self.holds.iter().position(|h| h.id == id) {
                self.holds.remove(i);
            } else if self.expired.iter().any(|e| e == id) {
                return;
            }
        }
        self.charge(&spent);
    }

    /// `GET /v1/n1/usage`'s body.
    pub fn report(&mut self, now: f64, limits: &Limits, key: &str) -> String {
        self.roll(now);
        let (d, m) = (&self.day, &self.month);
        serde_json::json!({
            "key": key,
            "day": {
                "usd": d.usd, "input_tokens": d.input_tokens, "output_tokens": d.output_tokens, "requests": d.requests,
                "limit_usd": limits.usd_per_day, "limit_tokens": limits.tokens_per_day, "resets_at": iso(next_day(d.start)),
            },
            "month": {
                "usd": m.usd, "input_tokens": m.input_tokens, "output_tokens": m.output_tokens, "requests": m.requests,
                "limit_usd": limits.usd_per_month, "resets_at": iso(next_month(m.start)),
            },
        })
        .to_string()
    }
}

// ---- the Durable Object's protocol: one JSON operation per call

/// `reserve`: hold `need` for request `id` until `expires`.
pub fn reserve_op(now: f64, limits: &Limits, id: &str, need: &Spend, expires: f64) -> String {
    serde_json::json!({"op": "reserve", "now": now, "limits": limits.to_json(), "id": id, "usd": need.usd, "input_tokens": need.input_tokens, "output_tokens": need.output_tokens, "expires": expires}).to_string()
}

/// `settle`: request `id` (empty: it held nothing) spent `spent`.
pub fn settle_op(now: f64, id: &str, spent: &Spend) -> String {
    serde_json::json!({"op": "settle", "now": now, "id": id, "usd": spent.usd, "input_tokens": spent.input_tokens, "output_tokens": spent.output_tokens}).to_string()
}

/// `usage`: the report of key `key` under `limits`.
pub fn usage_op(now: f64, limits: &Limits, key: &str) -> String {
    serde_json::json!({"op": "usage", "now": now, "limits": limits.to_json(), "key": key}).to_string()
}

/// Apply one operation to `ledger`: the reply (`reserve`: `{"ok": true}` or
/// `{"ok": false, "limit", "message", "resets_at"}`; `usage`: the report).
pub fn apply(ledger: &mut Ledger, op: &str) -> String {
    let op: Value = serde_json::from_str(op).unwrap_or(Value::Null);
    let num = |k: &str| op.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let count = |k: &str| op.get(k).and_then(Value::as_u64).unwrap_or(0);
    let text = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or("");
    let limits = op.get("limits").and_then(|l| Limits::from_json(l).ok()).unwrap_or_default();
    let spend = Spend { usd: num("usd"), input_tokens: count("input_tokens"), output_tokens: count("output_tokens") };
    let now = num("now");
    match text("op") {
        "reserve" => match ledger.reserve(now, &limits, text("id"), spend, num("expires")) {
            Ok(()) => r#"{"ok":true}"#.to_owned(),
            Err(e) => serde_json::json!({"ok": false, "limit": e.limit, "message": e.message, "resets_at": iso(e.resets_at)}).to_string(),
        },
        "settle" => {
            ledger.settle(now, text("id"), spend);
            r#"{"ok":true}"#.to_owned()
        }
        "usage" => ledger.report(now, &limits, text("key")),
        _ => r#"{"ok":false,"message":"unknown operation"}"#.to_owned(),
    }
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
/// request's characters / 4 (and the panel's answers for the summary and
/// later layers). `Err` names a model without a price when `usd` is needed.
pub fn estimate(lineup: &Lineup<'_>, req: &Request, usd: bool) -> Result<Spend, String> {
    let ens = lineup.ens;
    let input = tokens_of_chars(input_chars(req));
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

/// Characters of the request's input: text, tools, images (counted as `IMAGE_CHARS` each).
fn input_chars(req: &Request) -> usize {
    let images: usize = req
        .messages
        .iter()
        .map(|m| match &m.content {
            Content::Parts(p) => p.iter().filter(|p| matches!(p, Part::Image { .. })).count(),
            _ => 0,
        })
        .sum();
    let tools: usize = req
        .params
        .tools
        .iter()
        .map(|t| match t {
            Tool::Function { name, description, parameters, .. } => {
                name.len() + description.as_ref().map_or(0, String::len) + parameters.as_ref().map_or(0, |p| p.to_string().len())
            }
            Tool::Other(v) => v.to_string().len(),
        })
        .sum();
    let calls: usize = req.messages.iter().flat_map(|m| &m.tool_calls).map(|c| c.function.name.len() + c.function.arguments.len()).sum();
    req.text_chars() + tools + calls + images * IMAGE_CHARS + 16 * req.messages.len()
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
