//! Configuration: the native format (named ensembles, keys by secret name) and
//! the original N-1 `config.json`, both parsed into one `Config`, then checked.
//! Parsed once per isolate by the edge (and re-read when its text changes).

mod check;
mod fields;
mod legacy;
mod native;


use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::error::N1Error;
pub use crate::core::cost::Price;
pub use crate::core::providers::Provider;

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

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub provider: Provider,
    /// The full URL calls go to (chat completions, or Anthropic messages); empty for Workers AI.
    pub endpoint: String,
    pub model: String,
    pub temperature: Option<f64>,
    pub api_key: ApiKey,
    pub timeout_ms: Option<u64>,
    pub max_retries: Option<u32>,
    pub headers: Vec<(String, String)>,
    /// Used when the client sets no `max_tokens`/`max_completion_tokens`.
    pub max_tokens: Option<u64>,
    /// Fields added to every request body to this model (the operator's word wins).
    pub extra_body: Map<String, Value>,
    /// USD per million tokens (`price`; Workers AI's built-in models have theirs).
    pub price: Option<Price>,
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
    /// Which requests with tools skip the panel.
    pub tool_turns: ToolTurns,
    /// The model background tasks go to; `None`: the summary model(s).
    pub task_model: Option<Vec<ModelSpec>>,
    /// Pieces of text that mark a front-end's background task (title, tags,
    /// follow-ups), ASCII-lowercased: matched regardless of ASCII case.
    pub task_markers: Vec<String>,
}

/// `tool_turns`: which requests with tools go straight to the summary model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolTurns {
    /// Every request gets the panel.
    Ensemble,
    /// Any request with tools goes to the summary model alone.
    Summary,
    /// A request whose last message is a tool result goes to the summary
    /// model alone; the first turn of a tool-using conversation gets the panel.
    #[default]
    Auto,
}

/// The path a request takes (`n1.route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The panel, then the summary.
    Ensemble,
    /// A tool turn: the summary model alone.
    Summary,
    /// A front-end's background task: the task model alone.
    Task,
    /// Asked for explicitly (`x-n1-direct`): the task model (or the summary model) alone.
    Direct,
}

/// The models that serve one request: the ensemble's own, or its vision models.
#[derive(Debug, Clone, Copy)]
pub struct Lineup<'a> {
    pub ens: &'a Ensemble,
    pub panel: &'a [ModelSpec],
    pub summary: &'a [ModelSpec],
    pub route: Route,
}

impl Ensemble {
    /// The lineup for a request on `route`: the vision models when it carries
    /// images (a 400 when the ensemble has none); no panel off the ensemble route.
    pub fn lineup(&self, has_images: bool, route: Route) -> Result<Lineup<'_>, N1Error> {
        let (panel, summary) = match (&self.vision, has_images) {
            (_, false) => (self.panel.as_slice(), self.summary.as_slice()),
            (Some(v), true) => (v.panel.as_slice(), v.summary.as_slice()),
            (None, true) => {
                return Err(N1Error::InvalidRequest {
                    message: format!(
                        "The request contains images, but the ensemble `{}` has no vision models. Use an ensemble with a `vision` section, or send text only.",
                        self.name
                    ),
                    param: Some("messages".into()),
                    code: Some("vision_not_supported"),
                })
            }
        };
        Ok(match route {
            Route::Ensemble => Lineup { ens: self, panel, summary, route },
            Route::Summary => Lineup { ens: self, panel: &[], summary, route },
            // A task model serves text; images stay with the summary models.
            Route::Task | Route::Direct => {
                let task = self.task_model.as_deref().filter(|_| !has_images).unwrap_or(summary);
                Lineup { ens: self, panel: &[], summary: task, route }
            }
        })
    }

    /// Every model the ensemble may call.
    pub fn models(&self) -> impl Iterator<Item = &ModelSpec> {
        let vision = self.vision.iter().flat_map(|v| v.panel.iter().chain(&v.summary));
        self.panel.iter().chain(&self.summary).chain(vision)
    }
}

/// What chat front-ends put in their background requests (lowercase): Open
/// WebUI's default title, tags, follow-up, search-query and autocompletion
/// prompts, and LibreChat's title prompt. A request whose last user message or
/// system message contains one is a background task.
pub const DEFAULT_TASK_MARKERS: &[&str] = &[
    "generate a concise, 3-5 word title",
    "generate 1-3 broad tags categorizing the main themes",
    "suggest 3-5 relevant follow-up questions",
    "analyze the chat history to determine the necessity of generating search queries",
    "you are an autocompletion system",
    "please generate a concise, 5-word-or-less title for the conversation",
];

/// More layers multiply cost and latency for little gain (the MoA paper used 3).
pub const MAX_LAYERS: usize = 4;

/// Default hard ceiling of one request.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 300_000;

/// Proxies commonly drop connections idle for 30-100 s. The keep-alive write is
/// also how a client disconnect is noticed while the panel works, so it is short.
pub const DEFAULT_KEEP_ALIVE_MS: u64 = 3_000;

/// About 8,000 tokens: a long answer fits whole, and six of them still leave
/// most of a 128k-token context to the conversation.
pub const DEFAULT_MAX_ANSWER_CHARS: usize = 32_000;

/// Output tokens a budget reservation assumes per call when no `max_tokens` caps it.
pub const DEFAULT_RESERVE_OUTPUT_TOKENS: u64 = 1_024;

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
    /// Cut the stragglers once `min_panel` answers are in (relative to how
    /// fast those were); off when `None`.
    pub straggler: Option<Straggler>,
    /// Output tokens a budget reservation assumes per call when neither the
    /// client nor the model sets `max_tokens`.
    pub reserve_output_tokens: u64,
}

/// `straggler`: once `min_panel` answers are in, the rest get at most
/// `max(min_ms, factor × the time the min_panel-th answer took)` from the
/// start of the panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Straggler {
    pub factor: f64,
    pub min_ms: u64,
}

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
            straggler: None,
            reserve_output_tokens: DEFAULT_RESERVE_OUTPUT_TOKENS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
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
}

impl Config {
    /// The ensemble `name` names, or the default one.
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

/// Parse and check a configuration. Errors name the place and never quote a
/// value from the config (a key pasted into the wrong field must not leak).
pub fn parse_config(text: &str, opts: ConfigOptions) -> Result<Config, String> {
    // serde_json's syntax errors say where, never what: no value is quoted.
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(obj) = &value else {
        return Err("the configuration must be a JSON object".into());
    };
    let legacy = obj.contains_key("summary_model") || obj.get("models").is_some_and(Value::is_array);
    let config = if legacy { legacy::parse(value)? } else { native::parse(value)? };
    check::validate(&config, opts)?;
    Ok(config)
}

/// The `/v1/models` description of an ensemble (an `n1` field OpenAI clients ignore).
#[derive(Serialize)]
pub struct EnsembleInfo<'a> {
    pub panel: Vec<&'a str>,
    pub panel_size: usize,
    pub summary: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub summary_fallbacks: Vec<&'a str>,
    pub layers: usize,
    pub vision: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// The ensemble a request without `model` gets (the chat page preselects it).
    pub default: bool,
}

impl Ensemble {
    pub fn info<'a>(&'a self, config: &Config) -> EnsembleInfo<'a> {
        let names = |list: &'a [ModelSpec]| list.iter().map(|m| m.model.as_str()).collect::<Vec<_>>();
        EnsembleInfo {
            panel: names(&self.panel),
            panel_size: self.panel.len(),
            summary: &self.summary[0].model,
            summary_fallbacks: names(&self.summary[1..]),
            layers: self.layers,
            vision: self.vision.is_some(),
            description: self.description.as_deref(),
            default: self.name == config.default_ensemble,
        }
    }
}

#[cfg(test)]
mod tests;
