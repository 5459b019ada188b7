//! The native configuration format: named models, named ensembles, keys by
//! the name of the Workers secret that holds them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::check::defined;
use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeConfig {
    #[serde(default)]
    default_ensemble: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, NativeModel>,
    ensembles: BTreeMap<String, NativeEnsemble>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct NativeModel {
    #[serde(default)]
    provider: Provider,
    #[serde(default)]
    endpoint: Option<String>,
    model: String,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    api_key_secret: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    extra_body: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeVision {
    #[serde(default)]
    panel: Vec<Value>,
    summary: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeEnsemble {
    #[serde(default)]
    description: Option<String>,
    /// Each entry: a name from `models`, or an inline model.
    #[serde(default)]
    panel: Vec<Value>,
    /// One entry like the panel's, or a list (the rest are fallbacks).
    summary: Value,
    #[serde(default)]
    synthesis_prompt: Option<String>,
    // Policy fields, flat in the ensemble object (serde's flatten would
    // defeat deny_unknown_fields).
    #[serde(default)]
    min_panel: Option<usize>,
    #[serde(default)]
    quorum: Option<usize>,
    #[serde(default)]
    panel_timeout_ms: Option<u64>,
    #[serde(default)]
    request_timeout_ms: Option<u64>,
    #[serde(default)]
    on_summary_failure: OnSummaryFailure,
    #[serde(default)]
    progress: bool,
    #[serde(default)]
    keep_alive_ms: Option<u64>,
    #[serde(default)]
    max_answer_chars: Option<usize>,
    #[serde(default)]
    layers: Option<usize>,
    #[serde(default)]
    keep_history: Option<bool>,
    #[serde(default)]
    vision: Option<NativeVision>,
}

pub(super) fn parse(value: Value) -> Result<Config, String> {
    let native: NativeConfig = from_value(value, "configuration")?;
    if native.ensembles.is_empty() {
        return Err("`ensembles` must name at least one ensemble".into());
    }
    // Entries are resolved by hand rather than by an untagged enum, so that a
    // typo gets serde's precise message and the entry's path.
    let resolve = |r: Value, at: &str| -> Result<ModelSpec, String> {
        let m: NativeModel = match r {
            Value::String(n) => native
                .models
                .get(&n)
                .cloned()
                .ok_or_else(|| format!("{at} names a model that `models` does not define ({})", defined(native.models.keys())))?,
            other => from_value(other, at)?,
        };
        let endpoint = m.provider.endpoint(m.endpoint.as_deref()).map_err(|e| format!("{at}: {e}"))?;
        Ok(ModelSpec {
            provider: m.provider,
            endpoint,
            model: m.model,
            temperature: m.temperature,
            api_key: m.api_key_secret.map_or(ApiKey::None, ApiKey::Secret),
            timeout_ms: m.timeout_ms,
            max_retries: m.max_retries,
            headers: m.headers,
            max_tokens: m.max_tokens,
            extra_body: m.extra_body,
        })
    };
    let resolve_list = |list: Vec<Value>, at: &str| -> Result<Vec<ModelSpec>, String> {
        list.into_iter().enumerate().map(|(i, r)| resolve(r, &format!("{at}[{i}]"))).collect()
    };
    let one_or_many = |v: Value| match v {
        Value::Array(v) => v,
        one => vec![one],
    };
    let mut ensembles = Vec::new();
    for (name, e) in native.ensembles {
        let panel = resolve_list(e.panel, &format!("ensembles.{name}.panel"))?;
        let summary = resolve_list(one_or_many(e.summary), &format!("ensembles.{name}.summary"))?;
        let vision = match e.vision {
            None => None,
            Some(v) => Some(VisionModels {
                panel: resolve_list(v.panel, &format!("ensembles.{name}.vision.panel"))?,
                summary: resolve_list(one_or_many(v.summary), &format!("ensembles.{name}.vision.summary"))?,
            }),
        };
        ensembles.push(Ensemble {
            name,
            description: e.description,
            panel,
            summary,
            synthesis_prompt: e.synthesis_prompt,
            policy: Policy {
                min_panel: e.min_panel.unwrap_or(1),
                quorum: e.quorum,
                panel_timeout_ms: e.panel_timeout_ms,
                request_timeout_ms: e.request_timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
                on_summary_failure: e.on_summary_failure,
                progress: e.progress,
                keep_alive_ms: e.keep_alive_ms.unwrap_or(DEFAULT_KEEP_ALIVE_MS),
                max_answer_chars: e.max_answer_chars.unwrap_or(DEFAULT_MAX_ANSWER_CHARS),
            },
            layers: e.layers.unwrap_or(1),
            keep_history: e.keep_history.unwrap_or(true),
            vision,
        });
    }
    let default_ensemble = native.default_ensemble.unwrap_or_else(|| ensembles[0].name.clone());
    Ok(Config { ensembles, default_ensemble, legacy_client_key: None })
}
