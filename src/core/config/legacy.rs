//! The original N-1 `config.json`: it becomes one ensemble named `n1`. Fields
//! this format had that N-1 does not use are ignored, as the original did.


use serde_json::{Map, Value};

use super::fields::Fields;
use super::*;

const WHERE: &str = "original N-1 configuration";

/// A model of the original format, and its `summary_prompt`.
fn model(v: Value, at: &str) -> Result<(ModelSpec, Option<String>), String> {
    let mut f = Fields::of(v, at)?;
    let endpoint = f.required_string("endpoint")?;
    let model = f.required_string("model_name")?;
    // `api_key_secret` is our extension, so an original config can keep keys out of KV.
    let api_key = match (f.string("api_key_secret")?, f.string("bearer_token")?) {
        (Some(s), _) => ApiKey::Secret(s),
        (None, Some(t)) if !t.is_empty() => ApiKey::Literal(t),
        _ => ApiKey::None,
    };
    let spec = ModelSpec {
        provider: Provider::Openai,
        endpoint: Provider::Openai.endpoint(Some(&endpoint))?,
        model,
        // The original sent 0.7 when a model had no temperature.
        temperature: Some(f.number("temperature")?.unwrap_or(0.7)),
        api_key,
        // Seconds, as in the original.
        timeout_ms: f.number("timeout")?.filter(|t| *t > 0.0).map(|t| (t * 1000.0) as u64),
        max_retries: f.uint("max_retries")?.map(|n| n.min(u32::MAX as u64) as u32),
        headers: Vec::new(),
        max_tokens: None,
        extra_body: Map::new(),
        price: None,
    };
    Ok((spec, f.string("summary_prompt")?))
}

pub(super) fn parse(value: Value) -> Result<Config, String> {
    let mut top = Fields::of(value, WHERE)?;
    let panel = top
        .array("models")?
        .into_iter()
        .enumerate()
        .map(|(i, m)| model(m, &format!("models[{i}]")).map(|(spec, _)| spec))
        .collect::<Result<Vec<_>, _>>()?;
    let summary = top.value("summary_model").ok_or_else(|| format!("{WHERE}: `summary_model` is required"))?;
    let (summary, prompt) = model(summary, "summary_model")?;
    let progress = top.boolean("stream_status_feedback")?.unwrap_or(false);
    let client_key = top.string("api_bearer_token")?.filter(|t| !t.is_empty());
    Ok(Config {
        ensembles: vec![Ensemble {
            name: LEGACY_ENSEMBLE.into(),
            description: Some("Ensemble from an original N-1 config.json".into()),
            panel,
            summary: vec![summary],
            synthesis_prompt: prompt,
            // The original put model status lines into the answer text; we send
            // them as progress events instead, which clients can ignore.
            policy: Policy { progress, ..Policy::default() },
            layers: 1,
            keep_history: true,
            vision: None,
            tool_turns: ToolTurns::default(),
            task_model: None,
            task_markers: DEFAULT_TASK_MARKERS.iter().map(|m| (*m).to_owned()).collect(),
        }],
        default_ensemble: LEGACY_ENSEMBLE.into(),
        legacy_client_key: client_key,
    })
}
