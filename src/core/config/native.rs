//! The native configuration format: named models, named ensembles, keys by
//! the name of the Workers secret that holds them.


use serde_json::Value;

use super::check::defined;
use super::fields::Fields;
use super::*;

const PROVIDERS: &[&str] = &["openai", "anthropic", "workers-ai"];
const MODEL_FIELDS: &[&str] =
    &["provider", "endpoint", "model", "temperature", "api_key_secret", "timeout_ms", "max_retries", "headers", "max_tokens", "extra_body", "price"];
const ENSEMBLE_FIELDS: &[&str] = &[
    "description",
    "panel",
    "summary",
    "synthesis_prompt",
    "min_panel",
    "quorum",
    "panel_timeout_ms",
    "request_timeout_ms",
    "on_summary_failure",
    "progress",
    "keep_alive_ms",
    "max_answer_chars",
    "layers",
    "keep_history",
    "vision",
    "straggler",
    "tool_turns",
    "task_model",
    "task_markers",
    "reserve_output_tokens",
];

pub(super) fn parse(value: Value) -> Result<Config, String> {
    let mut top = Fields::of(value, "configuration")?;
    let default_ensemble = top.string("default_ensemble")?;
    let models = top.object("models")?;
    let ensembles = top.object("ensembles")?;
    top.done(&["default_ensemble", "models", "ensembles"])?;
    if ensembles.is_empty() {
        return Err("`ensembles` must name at least one ensemble".into());
    }
    let resolve = |r: Value, at: &str| -> Result<ModelSpec, String> {
        match r {
            Value::String(n) => match models.get(&n) {
                Some(m) => model(m.clone(), &format!("models.{n}")),
                None => Err(format!("{at} names a model that `models` does not define ({})", defined(models.keys()))),
            },
            other => model(other, at),
        }
    };
    let list = |v: Vec<Value>, at: &str| -> Result<Vec<ModelSpec>, String> {
        v.into_iter().enumerate().map(|(i, r)| resolve(r, &format!("{at}[{i}]"))).collect()
    };
    // `summary`: one entry like the panel's, or a list (the rest are fallbacks).
    let one_or_many = |f: &mut Fields, k: &str| -> Result<Vec<ModelSpec>, String> {
        let at = format!("{}.{k}", f.at);
        match f.value(k) {
            None => Err(format!("{at} is required")),
            Some(Value::Array(a)) => list(a, &at),
            Some(one) => list(vec![one], &at),
        }
    };
    let mut out = Vec::new();
    // Sorted by name (serde_json's `Map` is a BTreeMap), whatever order the JSON had.
    for (name, e) in ensembles {
        let mut f = Fields::of(e, &format!("ensembles.{name}"))?;
        let panel = list(f.array("panel")?, &format!("ensembles.{name}.panel"))?;
        let summary = one_or_many(&mut f, "summary")?;
        let vision = match f.value("vision") {
            None => None,
            Some(v) => {
                let mut v = Fields::of(v, &format!("ensembles.{name}.vision"))?;
                let panel = list(v.array("panel")?, &format!("ensembles.{name}.vision.panel"))?;
                let summary = one_or_many(&mut v, "summary")?;
                v.done(&["panel", "summary"])?;
                Some(VisionModels { panel, summary })
            }
        };
        let policy = Policy {
            min_panel: f.uint("min_panel")?.map_or(1, |n| n as usize),
            quorum: f.uint("quorum")?.map(|n| n as usize),
            panel_timeout_ms: f.uint("panel_timeout_ms")?,
            request_timeout_ms: f.uint("request_timeout_ms")?.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
            on_summary_failure: match f.choice("on_summary_failure", &["error", "best_panel_answer"])? {
                Some(1) => OnSummaryFailure::BestPanelAnswer,
                _ => OnSummaryFailure::Error,
            },
            progress: f.boolean("progress")?.unwrap_or(false),
            keep_alive_ms: f.uint("keep_alive_ms")?.unwrap_or(DEFAULT_KEEP_ALIVE_MS),
            max_answer_chars: f.uint("max_answer_chars")?.map_or(DEFAULT_MAX_ANSWER_CHARS, |n| n as usize),
            straggler: match f.value("straggler") {
                None => None,
                Some(v) => {
                    let mut s = Fields::of(v, &format!("ensembles.{name}.straggler"))?;
                    let straggler = Straggler { factor: s.number("factor")?.unwrap_or(2.0), min_ms: s.uint("min_ms")?.unwrap_or(1000) };
                    s.done(&["factor", "min_ms"])?;
                    Some(straggler)
                }
            },
            reserve_output_tokens: f.uint("reserve_output_tokens")?.unwrap_or(DEFAULT_RESERVE_OUTPUT_TOKENS),
        };
        let tool_turns = match f.choice("tool_turns", &["auto", "summary", "ensemble"])? {
            Some(1) => ToolTurns::Summary,
            Some(2) => ToolTurns::Ensemble,
            _ => ToolTurns::Auto,
        };
        // `"summary"` (or absent): background tasks go to the summary model(s).
        let task_model = match f.value("task_model") {
            None => None,
            Some(Value::String(s)) if s == "summary" => None,
            Some(v) => Some(list(vec![v], &format!("ensembles.{name}.task_model"))?),
        };
        let task_markers = match f.value("task_markers") {
            None => DEFAULT_TASK_MARKERS.iter().map(|m| (*m).to_owned()).collect(),
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|m| m.as_str().map(str::to_ascii_lowercase).ok_or_else(|| format!("ensembles.{name}: `task_markers` must be a list of strings")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("ensembles.{name}: `task_markers` must be a list of strings")),
        };
        let ensemble = Ensemble {
            description: f.string("description")?,
            synthesis_prompt: f.string("synthesis_prompt")?,
            layers: f.uint("layers")?.map_or(1, |n| n as usize),
            keep_history: f.boolean("keep_history")?.unwrap_or(true),
            tool_turns,
            task_model,
            task_markers,
            name,
            panel,
            summary,
            policy,
            vision,
        };
        f.done(ENSEMBLE_FIELDS)?;
        out.push(ensemble);
    }
    let default_ensemble = default_ensemble.unwrap_or_else(|| out[0].name.clone());
    Ok(Config { ensembles: out, default_ensemble, legacy_client_key: None })
}

/// An inline model definition (or one from `models`).
fn model(v: Value, at: &str) -> Result<ModelSpec, String> {
    let mut f = Fields::of(v, at)?;
    let provider = match f.choice("provider", PROVIDERS)? {
        Some(1) => Provider::Anthropic,
        Some(2) => Provider::WorkersAi,
        _ => Provider::Openai,
    };
    let endpoint = f.string("endpoint")?;
    let endpoint = provider.endpoint(endpoint.as_deref()).map_err(|e| format!("{at}: {e}"))?;
    let mut headers = Vec::new();
    for (k, v) in f.object("headers")? {
        match v {
            Value::String(v) => headers.push((k, v)),
            _ => return Err(format!("{at}: `headers` values must be strings")),
        }
    }
    let model = f.required_string("model")?;
    // Workers AI's built-in models carry their published prices.
    let price = match f.value("price") {
        Some(p) => Some(price(p, provider, &format!("{at}.price"))?),
        None if provider == Provider::WorkersAi => crate::core::providers::workers_ai::price(&model)
            .map(|(input, output)| Price { input, output, cached_input: None, cache_write_input: None }),
        None => None,
    };
    let spec = ModelSpec {
        provider,
        endpoint,
        model,
        price,
        temperature: f.number("temperature")?,
        api_key: f.string("api_key_secret")?.map_or(ApiKey::None, ApiKey::Secret),
        timeout_ms: f.uint("timeout_ms")?,
        max_retries: f.uint("max_retries")?.map(|n| n.min(u32::MAX as u64) as u32),
        headers,
        max_tokens: f.uint("max_tokens")?,
        extra_body: f.object("extra_body")?,
    };
    f.done(MODEL_FIELDS)?;
    Ok(spec)
}


/// `{"input": …, "output": …, "cached_input": …, "cache_write_input": …}`:
/// USD per million tokens (the last two optional), numbers ≥ 0. Anthropic
/// models' cache reads and writes default to Anthropic's multipliers of the
/// input price (the same for every Claude model); other providers' differ by
/// model, so theirs default to the input price.
fn price(v: Value, provider: Provider, at: &str) -> Result<Price, String> {
    use crate::core::cost::{ANTHROPIC_CACHE_READ_FACTOR, ANTHROPIC_CACHE_WRITE_FACTOR};
    let anthropic = provider == Provider::Anthropic;
    const FIELDS: [&str; 4] = ["input", "output", "cached_input", "cache_write_input"];
    let mut p = [None; 4];
    let ok = v.as_object().is_some_and(|o| {
        o.iter().all(|(k, n)| match FIELDS.iter().position(|f| f == k) {
            Some(i) => {
                p[i] = n.as_f64().filter(|n| *n >= 0.0);
                p[i].is_some()
            }
            None => false,
        })
    });
    match (ok, p) {
        (true, [Some(input), Some(output), cached_input, cache_write_input]) => Ok(Price {
            input,
            output,
            cached_input: cached_input.or(anthropic.then(|| input * ANTHROPIC_CACHE_READ_FACTOR)),
            cache_write_input: cache_write_input.or(anthropic.then(|| input * ANTHROPIC_CACHE_WRITE_FACTOR)),
        }),
        _ => Err(format!(
            "{at}: must be {{\"input\": …, \"output\": …}} in USD per million tokens (numbers ≥ 0; optional \"cached_input\" and \"cache_write_input\")"
        )),
    }
}
