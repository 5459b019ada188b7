//! Every error the worker returns: one enum, grouped by category, and the one
//! place that maps it to each dialect's error shape: OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` (`openai`) and Anthropic's
//! `{"type": "error", "error": {"type", "message"}}` (`anthropic_json`).

use serde::Serialize;

/// How an upstream call ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Error,
    Timeout,
    /// Not needed any more (the quorum was reached) and aborted.
    Cancelled,
    /// The provider does not (or no longer) serve the model: the config must change.
    ModelNotFound,
}

/// Why one upstream call did not produce an answer. Carried in 502 errors and in
/// the `n1` metadata, so it must never hold a secret: `reason` is a short,
/// scrubbed summary (see `Secrets`), never the upstream body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub model: String,
    /// HTTP status from the upstream, if it answered at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub kind: FailureKind,
    pub reason: String,
    /// The upstream's `Retry-After`, for the retry policy; not shown to clients.
    #[serde(skip)]
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    pub fn new(model: &str, status: Option<u16>, kind: FailureKind, reason: impl Into<String>) -> Self {
        Failure { model: model.to_owned(), status, kind, reason: reason.into(), retry_after_ms: None }
    }

    pub fn error(model: &str, reason: impl Into<String>) -> Self {
        Failure::new(model, None, FailureKind::Error, reason)
    }

    pub fn timeout(model: &str, reason: impl Into<String>) -> Self {
        Failure::new(model, None, FailureKind::Timeout, reason)
    }

    fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("{} (HTTP {s}): {}", self.model, self.reason),
            None => format!("{} ({}): {}", self.model, self.kind.as_str(), self.reason),
        }
    }
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Timeout => "timeout",
            FailureKind::Cancelled => "cancelled",
            FailureKind::ModelNotFound => "model_not_found",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum N1Error {
    // ---- the request (4xx)
    /// 400: the request body is not a valid request of its dialect.
    InvalidRequest { message: String, param: Option<String>, code: Option<&'static str> },
    /// 413: the body is larger than `N1_MAX_BODY_BYTES`.
    PayloadTooLarge(u64),
    /// 404: the `model` field names no ensemble.
    ModelNotFound(String),
    /// 404: no such route.
    NotFound(String),
    /// 404: no stored response with this id for this key.
    ResponseNotFound(String),
    /// 405: the route exists, the method does not.
    MethodNotAllowed { method: String, allowed: &'static str },

    // ---- who is calling (401, 403, 429)
    /// 401: no key sent.
    MissingKey,
    /// 401: the key is not one of ours.
    InvalidKey,
    /// 401: the operator configured no keys and did not allow anonymous use.
    AuthNotConfigured,
    /// 403: the key may not do this.
    Forbidden(String),
    /// 403: a browser origin not on `N1_CORS_ORIGINS`.
    OriginNotAllowed,
    /// 429: over the rate limit; retry after this many seconds.
    RateLimited(u64),
    /// 429: the request would pass the key's budget (the message names the
    /// limit and when it resets).
    OverBudget(String),

    // ---- the providers (502, 504)
    /// 502: too few panel members answered.
    PanelFailed { failures: Vec<Failure>, answered: usize, needed: usize },
    /// 502: the summary model failed.
    SummaryFailed(Vec<Failure>),
    /// 504: the request's hard ceiling (`request_timeout_ms`) passed.
    RequestTimeout(u64),
    /// A stream that broke after its headers left (an error event, never a status).
    Stream { message: String, code: &'static str },

    // ---- the deployment (500)
    /// 500: there is no configuration at all.
    ConfigMissing,
    /// 500: the configuration does not parse or is inconsistent.
    Config(String),
    /// 500: a bug or a runtime fault; the message is ours, never upstream text.
    Internal(String),
}

impl N1Error {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        N1Error::InvalidRequest { message: message.into(), param: param.map(str::to_owned), code: None }
    }

    pub fn status(&self) -> u16 {
        match self {
            N1Error::InvalidRequest { .. } => 400,
            N1Error::MissingKey | N1Error::InvalidKey | N1Error::AuthNotConfigured => 401,
            N1Error::Forbidden(_) | N1Error::OriginNotAllowed => 403,
            N1Error::ModelNotFound(_) | N1Error::NotFound(_) | N1Error::ResponseNotFound(_) => 404,
            N1Error::MethodNotAllowed { .. } => 405,
            N1Error::PayloadTooLarge(_) => 413,
            N1Error::RateLimited(_) | N1Error::OverBudget(_) => 429,
            N1Error::ConfigMissing | N1Error::Config(_) | N1Error::Internal(_) => 500,
            N1Error::PanelFailed { .. } | N1Error::SummaryFailed(_) | N1Error::Stream { .. } => 502,
            N1Error::RequestTimeout(_) => 504,
        }
    }

    /// OpenAI's `type`.
    fn openai_type(&self) -> &'static str {
        match self {
            N1Error::InvalidRequest { .. }
            | N1Error::ModelNotFound(_)
            | N1Error::NotFound(_)
            | N1Error::ResponseNotFound(_)
            | N1Error::MethodNotAllowed { .. }
            | N1Error::PayloadTooLarge(_)
            | N1Error::MissingKey
            | N1Error::InvalidKey
            | N1Error::AuthNotConfigured => "invalid_request_error",
            N1Error::Forbidden(_) | N1Error::OriginNotAllowed => "permission_error",
            N1Error::RateLimited(_) => "rate_limit_error",
            N1Error::OverBudget(_) => "insufficient_quota",
            N1Error::PanelFailed { .. } | N1Error::SummaryFailed(_) | N1Error::RequestTimeout(_) | N1Error::Stream { .. } => {
                "upstream_error"
            }
            N1Error::ConfigMissing | N1Error::Config(_) | N1Error::Internal(_) => "server_error",
        }
    }

    pub fn code(&self) -> Option<&'static str> {
        match self {
            N1Error::InvalidRequest { code, .. } => *code,
            N1Error::ModelNotFound(_) => Some("model_not_found"),
            N1Error::MissingKey | N1Error::InvalidKey => Some("invalid_api_key"),
            N1Error::AuthNotConfigured => Some("auth_not_configured"),
            N1Error::Forbidden(_) => Some("model_not_allowed"),
            N1Error::OriginNotAllowed => Some("origin_not_allowed"),
            N1Error::PayloadTooLarge(_) => Some("request_too_large"),
            N1Error::RateLimited(_) => Some("rate_limit_exceeded"),
            N1Error::OverBudget(_) => Some("insufficient_quota"),
            N1Error::NotFound(_) => Some("not_found"),
            N1Error::ResponseNotFound(_) => Some("response_not_found"),
            N1Error::MethodNotAllowed { .. } => Some("method_not_allowed"),
            N1Error::ConfigMissing => Some("config_missing"),
            N1Error::Config(_) => Some("config_invalid"),
            N1Error::PanelFailed { .. } => Some("panel_failed"),
            N1Error::SummaryFailed(_) => Some("summary_failed"),
            N1Error::RequestTimeout(_) => Some("request_timeout"),
            N1Error::Stream { code, .. } => Some(code),
            N1Error::Internal(_) => Some("internal_error"),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            N1Error::InvalidRequest { param, .. } => param.as_deref(),
            N1Error::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            N1Error::InvalidRequest { message, .. } | N1Error::Stream { message, .. } => message.clone(),
            N1Error::MissingKey => "No API key provided. Send it as `Authorization: Bearer <key>` (or `x-api-key`).".into(),
            N1Error::InvalidKey => "Incorrect API key provided.".into(),
            N1Error::AuthNotConfigured => "This N-1 deployment has no access keys configured, so it refuses every request. The operator must set the N1_API_KEYS secret, or N1_ALLOW_ANONYMOUS=true to let anyone use it.".into(),
            N1Error::Forbidden(m) | N1Error::OverBudget(m) => m.clone(),
            N1Error::OriginNotAllowed => "This browser origin is not allowed (N1_CORS_ORIGINS).".into(),
            N1Error::PayloadTooLarge(limit) => format!("The request body is larger than the {limit}-byte limit."),
            N1Error::RateLimited(s) => format!("Rate limit reached for this key; retry after {s} s."),
            N1Error::ModelNotFound(m) => {
                format!("The model `{m}` does not exist: it names no ensemble. GET /v1/models lists the ensembles.")
            }
            N1Error::NotFound(p) => format!(
                "Unknown path `{p}`. This endpoint serves POST /v1/chat/completions, POST /v1/responses, GET and DELETE /v1/responses/{{id}}, POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models, GET /v1/models/{{id}} and GET /v1/n1/usage."
            ),
            N1Error::ResponseNotFound(id) => format!("Response with id `{id}` not found (responses are kept for 30 days, for the key that made them)."),
            N1Error::MethodNotAllowed { method, allowed } => format!("Method {method} is not allowed here; use {allowed}."),
            N1Error::ConfigMissing => "N-1 is not configured: put the configuration JSON in the KV namespace bound as CONFIG (key `config`) or in the N1_CONFIG variable/secret (locally: .dev.vars). Without either, the built-in Workers AI ensemble is used, which needs the AI binding (deployed workers have it; `npm run dev` offers it only with `N1_DEV_AI=1` and a Cloudflare login). See the README, section Configuration.".into(),
            N1Error::Config(m) => format!("Invalid N-1 configuration: {m}"),
            N1Error::PanelFailed { failures, answered, needed } => {
                format!("Too few panel models answered ({answered}, {needed} needed). {}", join_failures(failures))
            }
            N1Error::SummaryFailed(f) => format!("The summary model failed. {}", join_failures(f)),
            N1Error::RequestTimeout(ms) => {
                format!("The request did not complete within its {ms} ms limit (request_timeout_ms).")
            }
            N1Error::Internal(m) => format!("Internal error: {m}"),
        }
    }

    fn failures(&self) -> &[Failure] {
        match self {
            N1Error::PanelFailed { failures, .. } | N1Error::SummaryFailed(failures) => failures,
            _ => &[],
        }
    }

    /// The OpenAI error object. Upstream failures are also listed in a
    /// machine-readable `failures` field that OpenAI clients ignore.
    pub fn openai(&self) -> OpenAiError<'_> {
        OpenAiError {
            error: OpenAiErrorObject {
                message: self.message(),
                kind: self.openai_type(),
                param: self.param(),
                code: self.code(),
                failures: self.failures(),
            },
        }
    }

    /// The OpenAI error object as JSON text.
    pub fn openai_json(&self) -> String {
        serde_json::to_string(&self.openai()).unwrap_or_default()
    }

    /// Anthropic's `error.type` (its documented set; N-1's own 5xx are `api_error`).
    fn anthropic_type(&self) -> &'static str {
        match self {
            N1Error::InvalidRequest { .. } | N1Error::MethodNotAllowed { .. } => "invalid_request_error",
            N1Error::MissingKey | N1Error::InvalidKey | N1Error::AuthNotConfigured => "authentication_error",
            N1Error::Forbidden(_) | N1Error::OriginNotAllowed => "permission_error",
            N1Error::ModelNotFound(_) | N1Error::NotFound(_) | N1Error::ResponseNotFound(_) => "not_found_error",
            N1Error::PayloadTooLarge(_) => "request_too_large",
            N1Error::RateLimited(_) | N1Error::OverBudget(_) => "rate_limit_error",
            _ => "api_error",
        }
    }

    /// Anthropic's error object as JSON text (the body of an error reply and the
    /// data of a stream's `error` event): `{"type": "error", "error": {"type",
    /// "message", "details": {"error_code"}}}`. N-1's code is in
    /// `details.error_code` (the SDKs' `errorCode`), and for N-1's own 5xx also
    /// at the start of the message, which names each upstream failure.
    pub fn anthropic_json(&self) -> String {
        let code = self.code();
        let mut message = self.message();
        if let Some(c) = code.filter(|_| self.status() >= 500) {
            message.insert_str(0, ": ");
            message.insert_str(0, c);
        }
        let mut out = Vec::with_capacity(96 + message.len());
        out.extend_from_slice(br#"{"type":"error","error":{"type":""#);
        out.extend_from_slice(self.anthropic_type().as_bytes());
        out.extend_from_slice(br#"","message":"#);
        let _ = serde_json::to_writer(&mut out, message.as_str());
        if let Some(c) = code {
            // Codes are static identifiers: nothing to escape.
            out.extend_from_slice(br#","details":{"error_code":""#);
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"}}");
        String::from_utf8(out).unwrap_or_default()
    }
}

#[derive(Serialize)]
pub struct OpenAiError<'a> {
    pub error: OpenAiErrorObject<'a>,
}

#[derive(Serialize)]
pub struct OpenAiErrorObject<'a> {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<&'a str>,
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub failures: &'a [Failure],
}

fn join_failures(failures: &[Failure]) -> String {
    let parts: Vec<String> = failures.iter().map(Failure::describe).collect();
    parts.join("; ")
}

impl std::fmt::Display for N1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
