//! Configuration: the native format (named ensembles, keys by secret name) and
//! the original N-1 `config.json`, both parsed into one `Config`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Name of the ensemble an original N-1 config becomes.
pub const LEGACY_ENSEMBLE: &str = "n1";

/// Where a model's API key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKey {
    None,
    /// The name of a Workers secret (or var) holding the key.
    Secret(String),
    /// A key written into the config itself (original N-1 format only).
    Literal(String),
}

/// The API a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Any OpenAI-compatible chat-completions URL.
    #[default]
    Openai,
    /// Anthropic's Messages API, translated to and from the OpenAI shape.
    Anthropic,
    /// Cloudflare Workers AI through the `AI` binding (no endpoint, no key).
    WorkersAi,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub provider: Provider,
    /// Full chat-completions (or Anthropic messages) URL; empty for Workers AI.
    pub endpoint: String,
    pub model: String,
    pub temperature: Option<f64>,
    pub api_key: ApiKey,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub headers: BTreeMap<String, String>,
    /// Used when the client sets no `max_tokens`/`max_completion_tokens`.
    pub max_tokens: Option<u64>,
    /// Fields added to every request body to this model (the operator's word wins).
    pub extra_body: Map<String, Value>,
}

/// The models that answer requests carrying images.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionModels {
    pub panel: Vec<ModelSpec>,
    pub summary: Vec<ModelSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    pub name: String,
    pub description: Option<String>,
    pub panel: Vec<ModelSpec>,
    /// First entry is the summary model; the rest are fallbacks.
    pub summary: Vec<ModelSpec>,
    pub synthesis_prompt: Option<String>,
    pub policy: Policy,
    /// Mixture-of-Agents layers: in layer k > 1 the panel answers again with
    /// layer k-1's answers as references.
    pub layers: usize,
    /// Whether the summary model sees the whole conversation or only the last
    /// user turn (and the client's system messages).
    pub keep_history: bool,
    pub vision: Option<VisionModels>,
}

impl Ensemble {
    /// The ensemble as it serves this request: its vision models when the
    /// request carries images, a 400 when it has none.
    pub fn for_request(&self, has_images: bool) -> Result<std::borrow::Cow<'_, Ensemble>, crate::error::N1Error> {
        if !has_images {
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        match &self.vision {
            Some(v) => {
                let mut e = self.clone();
                e.panel = v.panel.clone();
                e.summary = v.summary.clone();
                Ok(std::borrow::Cow::Owned(e))
            }
            None => Err(crate::error::N1Error::InvalidRequest {
                message: format!(
                    "The request contains images, but the ensemble `{}` has no vision models. Use an ensemble with a `vision` section, or send text only.",
                    self.name
                ),
                param: Some("messages".into()),
                code: Some("vision_not_supported"),
            }),
        }
    }
}

/// More layers multiply cost and latency for little gain (the MoA paper used 3).
pub const MAX_LAYERS: usize = 4;

/// Default hard ceiling of one request.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 300_000;

/// How an ensemble copes with slow and failing models.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Fewer successful panel answers than this is a failure.
    pub min_panel: usize,
    /// Start the synthesis once this many answers are in, aborting the rest.
    pub quorum: Option<usize>,
    /// When it passes, stragglers are aborted and the synthesis uses what came back.
    pub panel_timeout_ms: Option<u64>,
    /// Hard ceiling of the whole request.
    pub request_timeout_ms: u64,
    pub on_summary_failure: OnSummaryFailure,
    /// Send panel progress events on streams even when the client did not ask.
    pub progress: bool,
    /// Silence on a stream longer than this gets an SSE comment.
    pub keep_alive_ms: u64,
    /// Each panel answer is cut to this many characters in the synthesis prompt.
    pub max_answer_chars: usize,
}

/// Proxies commonly drop connections idle for 30-100 s. The keep-alive write is
/// also how a client disconnect is noticed while the panel works, so it is short.
pub const DEFAULT_KEEP_ALIVE_MS: u64 = 3_000;

/// About 8,000 tokens: a long answer fits whole, and six of them still leave
/// most of a 128k-token context to the conversation.
pub const DEFAULT_MAX_ANSWER_CHARS: usize = 32_000;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_panel: 1,
            quorum: None,
            panel_timeout_ms: None,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            on_summary_failure: OnSummaryFailure::Error,
            progress: false,
            keep_alive_ms: DEFAULT_KEEP_ALIVE_MS,
            max_answer_chars: DEFAULT_MAX_ANSWER_CHARS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSummaryFailure {
    /// The reply is an error (502, or an error event on a stream).
    #[default]
    Error,
    /// The first successful panel answer, marked as such in `n1`.
    BestPanelAnswer,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Sorted by name.
    pub ensembles: Vec<Ensemble>,
    pub default_ensemble: String,
    /// The original format's `api_bearer_token`: a client key for its ensemble.
    pub legacy_client_key: Option<String>,
    /// The original format's `stream_status_feedback`.
    pub stream_status_feedback: bool,
}

impl Config {
    pub fn ensemble(&self, name: Option<&str>) -> Option<&Ensemble> {
        let name = name.unwrap_or(&self.default_ensemble);
        self.ensembles.iter().find(|e| e.name == name)
    }
}

/// Operator switches that shape what a config may contain.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigOptions {
    /// `N1_ALLOW_INSECURE_UPSTREAMS=true`: plain-http loopback endpoints, for
    /// local development and tests.
    pub allow_insecure_upstreams: bool,
}

pub fn parse_config(text: &str, opts: ConfigOptions) -> Result<Config, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| redact(&e.to_string()))?;
    let Value::Object(obj) = &value else {
        return Err("the configuration must be a JSON object".into());
    };
    let legacy = obj.contains_key("summary_model") || obj.get("models").is_some_and(Value::is_array);
    let config = if legacy { parse_legacy(value)? } else { parse_native(value)? };
    validate(&config, opts)?;
    Ok(config)
}

/// serde messages quote the offending value (`string "…"`, ``unknown variant `…` ``,
/// ``integer `…` ``); a key pasted into the wrong field must not end up in an
/// error response, so every quoted value is dropped. Kept: the names serde lists
/// after `expected` (the schema's own), and an unknown or missing field's name
/// when it looks like one of ours (lowercase ASCII, digits, `_`), so a typo is
/// still named.
fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(['"', '`']) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let quote = tail.as_bytes()[0] as char;
        let Some(end) = tail[1..].find(quote) else {
            rest = ""; // an unclosed quote: drop the rest
            break;
        };
        let inner = &tail[1..1 + end];
        rest = &tail[end + 2..];
        let schema_name = quote == '`' && (out.contains("expected") || (out.ends_with("field ") && looks_like_field_name(inner)));
        if schema_name {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        } else {
            // `invalid type: string "x", …` → `invalid type: a string, …`
            let kept = out.trim_end().len();
            out.truncate(kept);
            if out.ends_with(" string") {
                out.truncate(out.len() - "string".len());
                out.push_str("a string");
            }
        }
    }
    out.push_str(rest);
    out
}

/// The names a reference could have used (a wrong reference itself is not
/// quoted: it could be a key pasted in the wrong place).
fn defined<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "it defines none".into()
    } else {
        format!("defined: {}", names.join(", "))
    }
}

fn looks_like_field_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("{what}: {}", redact(&e.to_string())))
}

// ---- native format ----

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

fn parse_native(value: Value) -> Result<Config, String> {
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
        let endpoint = match (m.provider, m.endpoint.as_deref()) {
            (Provider::WorkersAi, _) => String::new(),
            (Provider::Anthropic, None) => ANTHROPIC_ENDPOINT.to_owned(),
            (Provider::Anthropic, Some(e)) => normalize_endpoint_for(e, "/messages"),
            (Provider::Openai, Some(e)) => normalize_endpoint(e),
            (Provider::Openai, None) => return Err(format!("{at}: `endpoint` is required (or set `provider`)")),
        };
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
    Ok(Config { ensembles, default_ensemble, legacy_client_key: None, stream_status_feedback: false })
}

// ---- the original N-1 config.json ----

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
            endpoint: normalize_endpoint(&self.endpoint),
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

fn parse_legacy(value: Value) -> Result<Config, String> {
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
        stream_status_feedback: legacy.stream_status_feedback.unwrap_or(false),
    })
}

const ANTHROPIC_ENDPOINT: &str = "https://api.anthropic.com/v1/messages";

/// Accept a base URL (`https://api.openai.com/v1`) as well as the full
/// chat-completions URL.
fn normalize_endpoint(endpoint: &str) -> String {
    normalize_endpoint_for(endpoint, "/chat/completions")
}

fn normalize_endpoint_for(endpoint: &str, path: &str) -> String {
    let e = endpoint.trim();
    // Azure-style endpoints carry a query (`…/deployments/x?api-version=…`): the path goes before it.
    let (base, query) = e.split_at(e.find('?').unwrap_or(e.len()));
    if base.ends_with(path) {
        e.to_owned()
    } else {
        format!("{}{path}{query}", base.trim_end_matches('/'))
    }
}

fn validate(config: &Config, opts: ConfigOptions) -> Result<(), String> {
    if config.ensemble(None).is_none() {
        return Err(format!(
            "`default_ensemble` names an ensemble that `ensembles` does not define ({})",
            defined(config.ensembles.iter().map(|e| &e.name))
        ));
    }
    for e in &config.ensembles {
        if e.name.is_empty() {
            return Err("an ensemble has an empty name".into());
        }
        if e.summary.is_empty() {
            return Err(format!("ensemble `{}` has no summary model", e.name));
        }
        let p = &e.policy;
        let n = e.panel.len();
        if n > 0 && (p.min_panel == 0 || p.min_panel > n) {
            return Err(format!("ensemble `{}`: `min_panel` must be between 1 and the panel size ({n})", e.name));
        }
        if let Some(q) = p.quorum {
            if q < p.min_panel || q > n {
                return Err(format!("ensemble `{}`: `quorum` must be between `min_panel` ({}) and the panel size ({n})", e.name, p.min_panel));
            }
        }
        if p.request_timeout_ms == 0 || p.panel_timeout_ms == Some(0) || p.keep_alive_ms < 100 {
            return Err(format!("ensemble `{}`: timeouts must be positive and `keep_alive_ms` at least 100", e.name));
        }
        if p.max_answer_chars < 100 {
            return Err(format!("ensemble `{}`: `max_answer_chars` must be at least 100", e.name));
        }
        if !(1..=MAX_LAYERS).contains(&e.layers) {
            return Err(format!("ensemble `{}`: `layers` must be between 1 and {MAX_LAYERS}", e.name));
        }
        if e.layers > 1 && e.panel.is_empty() {
            return Err(format!("ensemble `{}`: `layers` needs a panel", e.name));
        }
        if let Some(v) = &e.vision {
            if v.summary.is_empty() {
                return Err(format!("ensemble `{}`: `vision` needs a summary model", e.name));
            }
        }
        let vision = e.vision.as_ref();
        let lists = [
            ("panel", Some(&e.panel)),
            ("summary", Some(&e.summary)),
            ("vision.panel", vision.map(|v| &v.panel)),
            ("vision.summary", vision.map(|v| &v.summary)),
        ];
        for (role, list) in lists {
            let Some(list) = list else { continue };
            for (i, m) in list.iter().enumerate() {
                let at = format!("ensembles.{}.{role}[{i}]", e.name);
                if m.provider != Provider::WorkersAi {
                    check_endpoint(&m.endpoint, opts).map_err(|e| format!("{at}: {e}"))?;
                }
                if m.model.is_empty() {
                    return Err(format!("{at}: `model` must not be empty"));
                }
                if let Some(t) = m.temperature {
                    if !(0.0..=2.0).contains(&t) {
                        return Err(format!("{at}: `temperature` must be between 0 and 2"));
                    }
                }
                if let ApiKey::Secret(s) = &m.api_key {
                    if s.is_empty() {
                        return Err(format!("{at}: `api_key_secret` must not be empty"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Endpoints come only from the operator's config (never from a request), and
/// must be https; plain http only to this machine, and only when allowed.
fn check_endpoint(url: &str, opts: ConfigOptions) -> Result<(), String> {
    let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return Err("`endpoint` must be an https:// URL".into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || url.chars().any(char::is_whitespace) || authority.contains('@') {
        return Err("`endpoint` is not a valid URL".into());
    }
    if secure {
        return Ok(());
    }
    let host = if authority.starts_with('[') {
        authority.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if !is_loopback(host) {
        return Err("`endpoint` must be https:// (plain http is only for loopback addresses in development)".into());
    }
    if !opts.allow_insecure_upstreams {
        return Err("`endpoint` uses plain http to a loopback address, which needs N1_ALLOW_INSECURE_UPSTREAMS=true (development and tests only)".into());
    }
    Ok(())
}

/// `localhost`, `::1` or an IPv4 address in 127.0.0.0/8, parsed (a name that
/// merely starts with `127.` is not one).
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "::1" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets.iter().all(|o| !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()) && o.parse::<u16>().is_ok_and(|n| n <= 255))
}

/// The `/v1/models` description of an ensemble (an `n1` field OpenAI clients ignore).
pub fn describe(e: &Ensemble) -> Value {
    let mut m = Map::new();
    m.insert("panel".into(), e.panel.iter().map(|p| Value::from(p.model.as_str())).collect());
    m.insert("panel_size".into(), e.panel.len().into());
    m.insert("summary".into(), e.summary[0].model.as_str().into());
    if e.summary.len() > 1 {
        m.insert("summary_fallbacks".into(), e.summary[1..].iter().map(|p| Value::from(p.model.as_str())).collect());
    }
    m.insert("layers".into(), e.layers.into());
    m.insert("vision".into(), e.vision.is_some().into());
    if let Some(d) = &e.description {
        m.insert("description".into(), d.as_str().into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn native() -> Value {
        json!({
            "default_ensemble": "council",
            "models": {
                "a": {"endpoint": "https://api.a.test/v1", "model": "model-a", "api_key_secret": "A_KEY", "temperature": 0.5}
            },
            "ensembles": {
                "council": {
                    "panel": ["a", {"endpoint": "https://b.test/v1/chat/completions", "model": "model-b"}],
                    "summary": "a",
                    "synthesis_prompt": "Merge."
                },
                "solo": {"panel": ["a"], "summary": ["a", "a"]}
            }
        })
    }

    #[test]
    fn parses_native_config_with_named_and_inline_models() {
        let c = parse_config(&native().to_string(), ConfigOptions::default()).unwrap();
        assert_eq!(c.default_ensemble, "council");
        let e = c.ensemble(None).unwrap();
        assert_eq!(e.panel.len(), 2);
        assert_eq!(e.panel[0].endpoint, "https://api.a.test/v1/chat/completions");
        assert_eq!(e.panel[0].api_key, ApiKey::Secret("A_KEY".into()));
        assert_eq!(e.panel[1].api_key, ApiKey::None);
        assert_eq!(e.synthesis_prompt.as_deref(), Some("Merge."));
        assert_eq!(c.ensemble(Some("solo")).unwrap().summary.len(), 2);
        assert!(c.ensemble(Some("nope")).is_none());
    }

    #[test]
    fn default_is_first_ensemble_when_unset() {
        let mut v = native();
        v.as_object_mut().unwrap().remove("default_ensemble");
        let c = parse_config(&v.to_string(), ConfigOptions::default()).unwrap();
        assert_eq!(c.default_ensemble, "council");
    }

    #[test]
    fn parses_the_original_n1_format() {
        let text = r#"{
            "api_bearer_token": "client-token",
            "models": [
                {"endpoint": "https://x.test/v1/chat/completions", "bearer_token": "k1", "model_name": "m1", "temperature": 0.7, "max_retries": 3, "timeout": 150},
                {"endpoint": "https://x.test/v1/chat/completions", "bearer_token": "k2", "model_name": "m2"}
            ],
            "summary_model": {"endpoint": "https://x.test/v1/chat/completions", "bearer_token": "k3", "model_name": "s", "temperature": 0.1, "summary_prompt": "Summarize.", "timeout": 150},
            "stream_status_feedback": true
        }"#;
        let c = parse_config(text, ConfigOptions::default()).unwrap();
        assert_eq!(c.default_ensemble, LEGACY_ENSEMBLE);
        let e = c.ensemble(None).unwrap();
        assert_eq!(e.panel[0].api_key, ApiKey::Literal("k1".into()));
        assert_eq!(e.panel[0].timeout_ms, Some(150_000));
        assert_eq!(e.panel[0].max_retries, Some(3));
        assert_eq!(e.panel[1].temperature, Some(0.7));
        assert_eq!(e.summary[0].model, "s");
        assert_eq!(e.synthesis_prompt.as_deref(), Some("Summarize."));
        assert_eq!(c.legacy_client_key.as_deref(), Some("client-token"));
        assert!(c.stream_status_feedback);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |v: Value| parse_config(&v.to_string(), ConfigOptions::default()).unwrap_err();
        assert!(parse_config("{", ConfigOptions::default()).unwrap_err().contains("EOF"));
        assert!(err(json!({"ensembles": {}})).contains("at least one"));
        assert!(err(json!({"ensembles": {"e": {"panel": ["zz"], "summary": {"endpoint": "https://a.test", "model": "m"}}}})).contains("ensembles.e.panel[0]"));
        assert!(err(json!({"default_ensemble": "x", "ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m"}}}})).contains("defined: `e`"));
        assert!(err(json!({"ensembles": {"e": {"summary": {"endpoint": "ftp://a", "model": "m"}}}})).contains("endpoint"));
        assert!(err(json!({"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m", "temprature": 1}}}})).contains("summary"));
    }

    #[test]
    fn policy_fields_parse_and_are_checked() {
        let m = json!({"endpoint": "https://a.test", "model": "m"});
        let ok = json!({"ensembles": {"e": {"panel": [m, m, m], "summary": m, "min_panel": 2, "quorum": 2,
            "panel_timeout_ms": 900, "request_timeout_ms": 5000, "on_summary_failure": "best_panel_answer", "progress": true}}});
        let c = parse_config(&ok.to_string(), ConfigOptions::default()).unwrap();
        let p = &c.ensembles[0].policy;
        assert_eq!((p.min_panel, p.quorum, p.panel_timeout_ms, p.request_timeout_ms), (2, Some(2), Some(900), 5000));
        assert_eq!(p.on_summary_failure, OnSummaryFailure::BestPanelAnswer);
        assert!(p.progress);
        let d = parse_config(&json!({"ensembles": {"e": {"panel": [m], "summary": m}}}).to_string(), ConfigOptions::default()).unwrap();
        assert_eq!(d.ensembles[0].policy, Policy::default());
        for bad in [json!({"min_panel": 4}), json!({"min_panel": 0}), json!({"quorum": 1, "min_panel": 2}), json!({"quorum": 9}),
                    json!({"on_summary_failure": "shrug"}), json!({"request_timeout_ms": 0})] {
            let mut e = json!({"panel": [m, m, m], "summary": m});
            e.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
            assert!(parse_config(&json!({"ensembles": {"e": e}}).to_string(), ConfigOptions::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_get_their_path_before_any_query() {
        for (given, want) in [
            ("https://x.test/v1", "https://x.test/v1/chat/completions"),
            ("https://x.test/v1/", "https://x.test/v1/chat/completions"),
            ("https://x.test/v1/chat/completions", "https://x.test/v1/chat/completions"),
            ("https://x.test/openai/deployments/d?api-version=2024-10-21", "https://x.test/openai/deployments/d/chat/completions?api-version=2024-10-21"),
            ("https://x.test/openai/deployments/d/chat/completions?api-version=1", "https://x.test/openai/deployments/d/chat/completions?api-version=1"),
        ] {
            assert_eq!(normalize_endpoint(given), want);
        }
    }

    #[test]
    fn legacy_status_feedback_turns_on_progress_events() {
        let text = r#"{"models": [{"endpoint": "https://x.test", "model_name": "a"}], "summary_model": {"endpoint": "https://x.test", "model_name": "s"}, "stream_status_feedback": true}"#;
        assert!(parse_config(text, ConfigOptions::default()).unwrap().ensembles[0].policy.progress);
    }

    #[test]
    fn endpoints_must_be_https_except_allowed_loopback() {
        let cfg = |ep: &str| json!({"ensembles": {"e": {"summary": {"endpoint": ep, "model": "m"}}}}).to_string();
        let strict = ConfigOptions::default();
        let dev = ConfigOptions { allow_insecure_upstreams: true };
        assert!(parse_config(&cfg("https://api.test/v1"), strict).is_ok());
        for ep in ["http://127.0.0.1:9000/v1", "http://localhost/v1", "http://[::1]:8080", "http://127.1.2.3/v1"] {
            assert!(parse_config(&cfg(ep), strict).unwrap_err().contains("N1_ALLOW_INSECURE_UPSTREAMS"), "{ep}");
            assert!(parse_config(&cfg(ep), dev).is_ok(), "{ep}");
        }
        for ep in ["http://api.test/v1", "http://10.0.0.1/v1", "http://localhost.evil.test/v1", "http://127.0.0.1@evil.test/",
                   "http://127.evil.test/v1", "http://127.0.0.1.evil.test/v1", "http://127.0.0.256/v1", "http://127.0.0/v1"] {
            assert!(parse_config(&cfg(ep), dev).is_err(), "{ep}");
        }
        assert!(parse_config(&cfg("file:///etc/passwd"), dev).is_err());
    }

    #[test]
    fn errors_never_quote_config_values() {
        // serde quotes an unknown variant in backticks; a key in `provider` must not come back.
        let text = r#"{"ensembles": {"e": {"summary": {"provider": "sk-live-SECRET-123", "model": "m"}}}}"#;
        let e = parse_config(text, ConfigOptions::default()).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(e.contains("`openai`"), "the expected names are kept: {e}");
        let e = parse_config(r#"{"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": 7123456}}}}"#, ConfigOptions::default()).unwrap_err();
        assert!(!e.contains("7123456"), "{e}");
        // A typo in a field name is still named; a key-like field name is not.
        let e = parse_config(r#"{"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m", "temprature": 1}}}}"#, ConfigOptions::default()).unwrap_err();
        assert!(e.contains("`temprature`"), "{e}");
        let e = parse_config(r#"{"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m", "sk-Live-KEY": 1}}}}"#, ConfigOptions::default()).unwrap_err();
        assert!(!e.contains("sk-Live-KEY"), "{e}");
        // A dangling model reference or default ensemble is not quoted either (the path says where).
        for text in [r#"{"ensembles": {"e": {"panel": ["sk-ref-SECRET"], "summary": {"endpoint": "https://a.test", "model": "m"}}}}"#,
                     r#"{"default_ensemble": "sk-def-SECRET", "ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m"}}}}"#] {
            let e = parse_config(text, ConfigOptions::default()).unwrap_err();
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn errors_never_quote_string_values() {
        // A key pasted into a numeric field must not be echoed back.
        let text = r#"{"models": [], "summary_model": {"endpoint": "https://a.test", "model_name": "s", "temperature": "sk-SECRET"}}"#;
        let e = parse_config(text, ConfigOptions::default()).unwrap_err();
        assert!(!e.contains("sk-SECRET"), "{e}");
        assert!(e.contains("a string"), "{e}");
    }
}
