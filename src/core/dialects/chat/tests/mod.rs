//! Chat Completions: requests checked and decoded (every 400 names its field),
//! answers encoded as `chat.completion` objects and `chat.completion.chunk`
//! streams with our identity.

use super::*;
use crate::core::dialects::{Dialect, Encoder, ReplyIds};
use crate::core::ensemble::report::{MemberReport, MemberStatus, N1Meta, PanelEnd, Progress, SummaryReport, SummaryStatus};
use crate::core::ensemble::Answer;
use crate::core::error::N1Error;
use crate::core::events::{Completion, Event, Finish, ReasoningField};
use crate::core::providers::Provider;
use crate::core::request::{Content, Limits, Part, Request, Role, Tool, ToolCall, ToolChoice};
use crate::core::sse;
use crate::core::usage::Usage;
use serde_json::{json, Value};
use std::borrow::Cow;

fn parse(v: Value) -> Result<Request, N1Error> {
    decode(v.to_string().as_bytes())
}

fn ok(v: Value) -> Request {
    parse(v.clone()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
}

fn err_of(v: Value) -> (Option<String>, String, Option<&'static str>) {
    match parse(v.clone()) {
        Err(N1Error::InvalidRequest { param, message, code }) => (param, message, code),
        other => panic!("{v}: expected a 400, got {other:?}"),
    }
}

fn param_of(v: Value) -> String {
    err_of(v).0.unwrap_or_default()
}

fn msgs() -> Value {
    json!([{"role": "user", "content": "x"}])
}

fn with(field: &str, value: Value) -> Value {
    let mut body = json!({"messages": msgs()});
    body[field] = value;
    body
}

// ---- requests: what is accepted


// ---- requests: every 400 names its field

// ---- the non-streaming reply

fn ids() -> ReplyIds {
    ReplyIds { id: "chatcmpl-ours".into(), created: 42, model: "council".into() }
}

fn meta() -> N1Meta {
    N1Meta {
        ensemble: "council".into(),
        route: crate::core::config::Route::Ensemble,
        panel: vec![MemberReport { model: "a".into(), status: MemberStatus::Ok, latency_ms: 5, ttft_ms: None, attempts: 1, usage: None, error: None, truncated: false, cost_usd: None, cost_estimated: false }],
        panel_ok: 2,
        panel_total: 3,
        panel_end: PanelEnd::All,
        summary: SummaryReport { model: "s".into(), status: SummaryStatus::Ok, latency_ms: 1, usage: None, failed: vec![], cost_usd: None, cost_estimated: false },
        degraded: true,
        layers: None,
        ignored_tools: vec![],
        cost_usd: None,
        cost_estimated: false,
    }
}

fn answer(completion: Completion) -> Answer {
    Answer { completion, usage: Usage { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10, cached_tokens: 0, ..Usage::default() }, meta: meta(), fallback: false }
}

fn reply_json(a: &Answer) -> Value {
    serde_json::from_slice(&reply(&ids(), a)).unwrap()
}

// ---- the stream

/// Everything written, as the data of each event.
fn events(out: &[u8]) -> Vec<String> {
    let mut p = sse::Parser::new();
    let mut ev = Vec::new();
    p.push(out, &mut ev).unwrap();
    p.finish(&mut ev);
    ev.into_iter().map(|e| e.data).collect()
}

fn values(out: &[u8]) -> Vec<Value> {
    events(out).iter().map(|e| if e == "[DONE]" { Value::String(e.clone()) } else { serde_json::from_str(e).unwrap_or_else(|x| panic!("{x}: {e}")) }).collect()
}

/// A whole stream: start, the events, finish.
fn encode_all(include_usage: bool, evs: &[Event<'_>]) -> Vec<u8> {
    let mut s = ChatStream::new(&ids(), include_usage);
    let mut out = Vec::new();
    s.start(&mut out);
    for e in evs {
        s.event(e, &mut out);
    }
    s.finish(&meta(), &Usage { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0, ..Usage::default() }, &mut out);
    out
}

fn text(t: &str) -> Event<'_> {
    Event::Text(Cow::Borrowed(t))
}

mod requests;
mod replies;
