//! Edge: metrics in Workers Analytics Engine, when the dataset is bound as
//! `N1_METRICS`: one data point per upstream call and one per request (the
//! README lists the fields and gives SQL over them). Only names go in, never a
//! key or any text of a request or an answer. Without the binding nothing is
//! written.

use serde::Serialize;
use wasm_bindgen::JsCast;
use worker::{js_sys, Env};

use crate::core::config::Provider;
use crate::core::cost::Meter;

const BINDING: &str = "N1_METRICS";

#[derive(Serialize)]
struct Point<'a> {
    blobs: &'a [&'a str],
    doubles: &'a [f64],
    indexes: [&'a str; 1],
}

/// What the request was, for its data point.
pub struct Request<'a> {
    pub ensemble: &'a str,
    pub dialect: &'a str,
    pub stream: bool,
    /// `ok`, or the error code it ended with.
    pub outcome: &'a str,
    /// The key's name (`anonymous` without one).
    pub key: &'a str,
    pub started_ms: f64,
}

fn provider(p: Provider) -> &'static str {
    match p {
        Provider::Openai => "openai",
        Provider::Anthropic => "anthropic",
        Provider::WorkersAi => "workers-ai",
    }
}

/// Write the request's data points. What `writeDataPoint` returns goes into
/// `pending` (the real binding returns nothing; a test's stand-in, a promise
/// to wait on).
pub fn write(env: &Env, meter: &Meter, r: &Request, pending: &js_sys::Array) {
    let Some(ds) = super::kv::namespace(env, BINDING) else { return };
    let Some(write) = js_sys::Reflect::get(&ds, &"writeDataPoint".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok()) else {
        return;
    };
    let now = js_sys::Date::now();
    let send = |json: String| {
        if let Some(done) = js_sys::JSON::parse(&json).ok().and_then(|point| write.call1(&ds, &point).ok()) {
            pending.push(&done);
        }
    };
    let charges = meter.charges();
    for c in charges.iter() {
        let (u, estimated) = c.usage();
        let point = Point {
            blobs: &["call", r.ensemble, &c.model, provider(c.provider), c.status(), r.key, if c.summary { "summary" } else { "panel" }],
            doubles: &[
                c.ended_ms.unwrap_or(now) - c.started_ms,
                c.attempts.max(1) as f64,
                u.prompt_tokens as f64,
                u.completion_tokens as f64,
                u.cached_tokens as f64,
                c.cost().unwrap_or(0.0),
                c.price.is_some() as u8 as f64,
                estimated as u8 as f64,
                c.http_status() as f64,
            ],
            indexes: [r.ensemble],
        };
        send(serde_json::to_string(&point).unwrap_or_default());
    }
    let spend = meter.spend();
    let point = Point {
        blobs: &["request", r.ensemble, r.dialect, if r.stream { "stream" } else { "json" }, r.outcome, r.key],
        doubles: &[
            now - r.started_ms,
            charges.len() as f64,
            spend.input_tokens as f64,
            spend.output_tokens as f64,
            spend.usd,
            meter.priced() as u8 as f64,
        ],
        indexes: [r.ensemble],
    };
    send(serde_json::to_string(&point).unwrap_or_default());
}
