//! The original N-1 `config.json`: it becomes one ensemble named `n1`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::*;

#[derive(Deserialize)]
struct LegacyConfig {
    models: Vec<LegacyModel>,
    summary_model: LegacyModel,
    #[serde(default)]
    api_bearer_token: Option<String>,
    #[serde(default)]
    stream_status_feedback: Option<bool>,
}

#[derive(Deserialize)]
struct LegacyModel {
    endpoint: String,
    model_name: String,
    #[serde(default)]
    bearer_token: Option<String>,
    /// Our extension, so an original config can still keep keys out of KV.
    #[serde(default)]
    api_key_secret: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_retries: Option<u32>,
    /// Seconds, as in the original.
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    summary_prompt: Option<String>,
}

impl LegacyModel {
    fn into_spec(self) -> (ModelSpec, Option<String>) {
        let api_key = match (self.api_key_secret, self.bearer_token) {
            (Some(s), _) => ApiKey::Secret(s),
            (None, Some(t)) if !t.is_empty() => ApiKey::Literal(t),
            _ => ApiKey::None,
        };
        let spec = ModelSpec {
            provider: Provider::Openai,
            endpoint: Provider::Openai.endpoint(Some(&self.endpoint)).unwrap_or_default(),
            model: self.model_name,
            // The original sent 0.7 when a model had no temperature.
            temperature: Some(self.temperature.unwrap_or(0.7)),
            api_key,
            timeout_ms: self.timeout.filter(|t| *t > 0.0).map(|t| (t * 1000.0) as u64),
            max_retries: self.max_retries,
            headers: BTreeMap::new(),
            max_tokens: None,
            extra_body: Map::new(),
        };
        (spec, self.summary_prompt)
    }
}

pub(super) fn parse(value: Value) -> Result<Config, String> {
    let legacy: LegacyConfig = from_value(value, "original N-1 configuration")?;
    let panel = legacy.models.into_iter().map(|m| m.into_spec().0).collect();
    let (summary, prompt) = legacy.summary_model.into_spec();
    Ok(Config {
        ensembles: vec![Ensemble {
            name: LEGACY_ENSEMBLE.into(),
            description: Some("Ensemble from an original N-1 config.json".into()),
            panel,
            summary: vec![summary],
            synthesis_prompt: prompt,
            // The original put model status lines into the answer text; we send
            // them as progress events instead, which clients can ignore.
            policy: Policy { progress: legacy.stream_status_feedback.unwrap_or(false), ..Policy::default() },
            layers: 1,
            keep_history: true,
            vision: None,
        }],
        default_ensemble: LEGACY_ENSEMBLE.into(),
        legacy_client_key: legacy.api_bearer_token.filter(|t| !t.is_empty()),
    })
}
