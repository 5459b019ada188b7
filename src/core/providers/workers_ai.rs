//! Cloudflare Workers AI (the `AI` binding) as a provider: the input of
//! `AI.run(model, input)`, its outputs and streams decoded into the internal
//! types (its older models answer `{"response": …}`, the 2026 ones OpenAI's
//! shape), the binding's error codes, and the built-in default ensemble.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use super::openai::{self, Tools};
use super::Call;
use crate::core::error::{Failure, FailureKind};
use crate::core::events::{Completion, Emit, Event, Finish, StreamError};
use crate::core::json;
use crate::core::request::ToolCall;
use crate::core::usage::Usage;

/// Client parameters Workers AI text models take besides ours, forwarded when sent.
const FORWARDED: &[&str] = &["top_k", "repetition_penalty", "frequency_penalty", "presence_penalty"];

pub fn body(call: &Call) -> String {
    serde_json::to_string(&Input(call)).unwrap_or_default()
}

/// The input of `AI.run`: OpenAI's messages and the parameters Workers AI
/// knows; the model's `extra_body` wins.
struct Input<'a, 'c>(&'a Call<'c>);

impl Serialize for Input<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let (p, extra) = (c.params, &c.model.extra_body);
        let ours = |k: &str| !extra.contains_key(k);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("messages", &c.conversation)?;
        if let Some(n) = c.max_tokens().filter(|_| ours("max_tokens")) {
            map.serialize_entry("max_tokens", &n)?;
        }
        if let Some(t) = c.temperature().filter(|_| ours("temperature")) {
            map.serialize_entry("temperature", &t)?;
        }
        if let Some(t) = p.top_p.filter(|_| ours("top_p")) {
            map.serialize_entry("top_p", &t)?;
        }
        if let Some(seed) = p.seed.filter(|_| ours("seed")) {
            map.serialize_entry("seed", &seed)?;
        }
        if c.with_tools && !p.tools.is_empty() && ours("tools") {
            map.serialize_entry("tools", &Tools(&p.tools))?;
        }
        if let Some(f) = p.response_format.as_ref().filter(|_| ours("response_format")) {
            map.serialize_entry("response_format", f)?;
        }
        if let Some(k) = p.top_k.filter(|_| ours("top_k")) {
            map.serialize_entry("top_k", &k)?;
        }
        for k in FORWARDED {
            if *k == "top_k" && p.top_k.is_some() {
                continue;
            }
            if let Some(v) = p.extra.get(*k).filter(|_| ours(k)) {
                map.serialize_entry(k, v)?;
            }
        }
        if c.stream && ours("stream") {
            map.serialize_entry("stream", &true)?;
        }
        for (k, v) in extra {
            // The conversation is ours: the model's extra_body cannot replace it.
            if k != "messages" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// A non-streaming output (`AI.run`'s result as JSON): `{"response", "usage",
/// "tool_calls"}`, or OpenAI's shape (the 2026 models answer `messages` in it).
pub fn parse_reply(text: &str) -> Result<Completion, String> {
    let mut out: Value = serde_json::from_str(text).map_err(|_| "Workers AI returned malformed JSON".to_owned())?;
    if out.get("choices").is_some() {
        return openai::reply_of(&mut out);
    }
    let tool_calls: Vec<ToolCall> = out
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let args = match t.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) if !v.is_null() => json::text(v),
                        _ => "{}".into(),
                    };
                    Some(ToolCall::function(format!("call_{i}"), t.get("name")?.as_str()?, args))
                })
                .collect()
        })
        .unwrap_or_default();
    let text = match out.get_mut("response").map(Value::take) {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None if tool_calls.is_empty() => return Err("Workers AI returned no response".into()),
        Some(Value::Null) | None => String::new(),
        Some(other) => json::text(&other),
    };
    let finish = if tool_calls.is_empty() { Finish::Stop } else { Finish::ToolCalls };
    Ok(Completion { text, tool_calls, finish, usage: out.get("usage").and_then(Usage::from_json), ..Completion::default() })
}

/// `data: {"response": "tok"}` … `data: [DONE]`, or OpenAI chunks (the 2026
/// models), which keep their own `finish_reason`.
#[derive(Default)]
pub struct StreamState {
    usage: Option<Usage>,
    openai: Option<openai::StreamState>,
    done: bool,
}

impl StreamState {
    pub fn complete(&self) -> bool {
        self.done || self.openai.as_ref().is_some_and(|o| o.complete())
    }

    pub fn ended(&self) -> bool {
        self.done || self.openai.as_ref().is_some_and(|o| o.ended())
    }

    pub fn event(&mut self, data: &str, emit: Emit) -> Result<(), StreamError> {
        if let Some(o) = &mut self.openai {
            return o.event(data, emit);
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            emit(Event::Finish(Finish::Stop));
            if let Some(u) = self.usage {
                emit(Event::Usage(u));
            }
            return Ok(());
        }
        let mut ev: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed("an event that is not JSON"))?;
        // The 2026 models stream OpenAI chunks (or an OpenAI error): decided by the keys, not the text.
        if ev.get("choices").is_some() || ev.get("error").is_some_and(|e| !e.is_null()) {
            return self.openai.insert(openai::StreamState::default()).event(data, emit);
        }
        if let Some(u) = ev.get("usage").and_then(Usage::from_json) {
            self.usage = Some(u);
        }
        if let Some(Value::String(t)) = ev.get_mut("response").map(Value::take).filter(|t| t.as_str().is_some_and(|t| !t.is_empty())) {
            emit(Event::Text(Cow::Owned(t)));
        }
        Ok(())
    }
}

/// A model of the built-in default ensemble, with what a cost feature and the
/// tests need to know about it. Prices and capabilities are copied from the
/// model's page in the Workers AI catalog (https://developers.cloudflare.com/workers-ai/models/).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatalogModel {
    pub id: &'static str,
    /// Which lists of the default ensemble it is in: `PANEL`, `SUMMARY`, ... (bits).
    pub roles: u8,
    /// USD per million input tokens.
    pub usd_per_m_in: f64,
    /// USD per million output tokens (reasoning tokens count as output).
    pub usd_per_m_out: f64,
    pub vision: bool,
    /// Function calling.
    pub tools: bool,
    /// Needs the Workers Paid plan: on Workers Free the binding refuses it (5035).
    pub paid_plan: bool,
    /// `max_tokens` when the client sets none; reasoning counts against it.
    pub max_tokens: u32,
    /// `reasoning_effort` sent with every request; empty: the model's default.
    pub effort: &'static str,
}

pub const PANEL: u8 = 1;
/// The summary models, in table order: the first synthesizes, the rest are fallbacks.
pub const SUMMARY: u8 = 2;
pub const VISION_PANEL: u8 = 4;
pub const VISION_SUMMARY: u8 = 8;

#[allow(clippy::too_many_arguments)]
const fn m(id: &'static str, roles: u8, usd_in: f64, usd_out: f64, vision: bool, tools: bool, paid_plan: bool, max_tokens: u32, effort: &'static str) -> CatalogModel {
    CatalogModel { id, roles, usd_per_m_in: usd_in, usd_per_m_out: usd_out, vision, tools, paid_plan, max_tokens, effort }
}

/// The built-in `workers-ai` ensemble, one line per model (README, "Zero-key
/// default", says why these). The panel runs on Workers Free; the first summary
/// model needs Workers Paid, and on Free its refusal (403, before any token)
/// hands the synthesis to the next one.
pub const DEFAULT_MODELS: &[CatalogModel] = &[
    //  id                                 roles                                   $/M in  $/M out vision tools  paid   max_tok effort
    m("@cf/zai-org/glm-5.3-flash",        SUMMARY | VISION_SUMMARY,               0.15,   0.50,   true,  true,  true,  8192,   "high"),
    m("@cf/qwen/qwen3.8-27b",             SUMMARY | VISION_SUMMARY | VISION_PANEL, 0.45,  3.20,   true,  true,  false, 8192,   "low"),
    m("@cf/openai/gpt-oss-120b",          PANEL,                                  0.35,   0.75,   false, true,  false, 4096,   ""),
    m("@cf/nvidia/nemotron-3-120b-a12b",  PANEL,                                  0.50,   1.50,   false, true,  false, 4096,   "low"),
    m("@cf/google/gemma-4-26b-a4b-it",    PANEL | VISION_PANEL,                   0.10,   0.30,   true,  true,  false, 4096,   "low"),
];

/// USD per million input and output tokens of a default-ensemble model.
pub fn price(model: &str) -> Option<(f64, f64)> {
    DEFAULT_MODELS.iter().find(|m| m.id == model).map(|m| (m.usd_per_m_in, m.usd_per_m_out))
}

/// The configuration used when none exists and the `AI` binding does: the
/// `DEFAULT_MODELS` table as an ensemble, so a fresh deployment answers
/// without any API key.
pub static DEFAULT_CONFIG: std::sync::LazyLock<String> = std::sync::LazyLock::new(default_config);

fn default_config() -> String {
    // Plain text, not serde_json's builder (smaller Wasm); the ids and efforts
    // are literals without quotes, and a test parses the result.
    let list = |role: u8| {
        let mut out = String::from("[");
        for m in DEFAULT_MODELS.iter().filter(|m| m.roles & role != 0) {
            if out.len() > 1 {
                out.push(',');
            }
            out += &format!(r#"{{"provider":"workers-ai","model":"{}","max_tokens":{}"#, m.id, m.max_tokens);
            if !m.effort.is_empty() {
                out += &format!(r#","extra_body":{{"reasoning_effort":"{}"}}"#, m.effort);
            }
            out.push('}');
        }
        out + "]"
    };
    let names = |role: u8| -> Vec<String> {
        let short = |m: &CatalogModel| m.id.rsplit('/').next().unwrap_or(m.id).to_owned() + if m.paid_plan { " (Workers Paid)" } else { "" };
        DEFAULT_MODELS.iter().filter(|m| m.roles & role != 0).map(short).collect()
    };
    format!(
        r#"{{"default_ensemble":"workers-ai","ensembles":{{"workers-ai":{{"description":"Built-in default, no API keys (Workers AI): {} answer; {} synthesizes","panel":{},"summary":{},"vision":{{"panel":{},"summary":{}}}}}}}}}"#,
        names(PANEL).join(", "),
        names(SUMMARY).join(", falling back to "),
        list(PANEL),
        list(SUMMARY),
        list(VISION_PANEL),
        list(VISION_SUMMARY)
    )
}

/// Workers AI's internal error codes (https://developers.cloudflare.com/workers-ai/platform/errors/)
/// and the HTTP status documented for each (0: none documented). The binding's
/// `run()` rejects with an Error whose message is `"<code>: <description>"`.
const ERROR_CODES: &[(u16, u16)] = &[
    (5007, 400), // No such model `${model}` or task
    (3042, 404), // Invalid model ID
    (5028, 0),   // This model was deprecated on <date>. Please use an alternative model
    (5035, 403), // the model needs the Workers Paid plan
    (5004, 400),
    (3003, 400),
    (5018, 403),
    (5016, 403),
    (3023, 403),
    (3041, 403),
    (5019, 405),
    (5005, 405),
    (3006, 413),
    (3007, 408),
    (3008, 408),
    (3036, 429), // daily free allocation used up
    (3040, 429), // out of capacity
];

/// The first known `<code>:` in a binding error message.
fn error_code(msg: &str) -> Option<(u16, u16)> {
    let b = msg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let colon = msg[i..].trim_start_matches(' ').starts_with(':');
        if colon && (3..=5).contains(&(i - start)) {
            if let Some(&known) = msg[start..i].parse::<u16>().ok().and_then(|c| ERROR_CODES.iter().find(|e| e.0 == c)) {
                return Some(known);
            }
        }
    }
    None
}

/// How a rejected `run()` is reported: its documented HTTP status (so retries
/// skip what will fail again), and a reason that says what to change. A model
/// Workers AI does not (or no longer) serve is kind `model_not_found`.
pub fn binding_failure(model: &str, msg: &str) -> Failure {
    let msg = msg.trim();
    let status = |s: u16| (s != 0).then_some(s);
    match error_code(msg) {
        Some((5007 | 3042 | 5028, s)) => Failure::new(
            model,
            status(s),
            FailureKind::ModelNotFound,
            format!("model_not_found: Workers AI does not serve `{model}` ({msg})"),
        ),
        Some((5035, s)) => Failure::new(model, status(s), FailureKind::Error, format!("`{model}` needs the Workers Paid plan ({msg})")),
        Some((_, s)) => Failure::new(model, status(s), FailureKind::Error, msg),
        None => Failure::error(model, msg),
    }
}

#[cfg(test)]
#[path = "workers_ai_tests.rs"]
mod tests;
