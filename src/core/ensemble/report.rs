//! What each model did, for the `n1` metadata every reply carries, and the
//! progress events of a stream.

use serde::Serialize;

use crate::core::config::Route;
use crate::core::error::{Failure, FailureKind};
use crate::core::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Ok,
    Error,
    Timeout,
    /// Not needed once the quorum was reached.
    Cancelled,
    /// The provider does not serve the model.
    ModelNotFound,
}

impl From<FailureKind> for MemberStatus {
    fn from(k: FailureKind) -> Self {
        match k {
            FailureKind::Error => MemberStatus::Error,
            FailureKind::Timeout => MemberStatus::Timeout,
            FailureKind::Cancelled => MemberStatus::Cancelled,
            FailureKind::ModelNotFound => MemberStatus::ModelNotFound,
        }
    }
}

/// Why the panel phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelEnd {
    /// Every member finished.
    All,
    /// `quorum` answers were in; the rest were cancelled.
    Quorum,
    /// The panel deadline passed; stragglers were aborted.
    Timeout,
    /// `min_panel` answers were in and the rest were too slow relative to
    /// them (`straggler`); they were cut.
    Straggler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryStatus {
    Ok,
    /// Every summary model failed; the first successful panel answer (from
    /// `model`) was returned instead.
    BestPanelAnswer,
}

/// What one panel member did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberReport {
    pub model: String,
    pub status: MemberStatus,
    /// From sending the request to the last chunk.
    pub latency_ms: u64,
    /// From sending the request to the first content or reasoning token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Calls made, retries included (0: still queued when it was cancelled).
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// The answer was longer than `max_answer_chars` and was cut in the synthesis prompt.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// USD; `null` when the model has no price (`cost::Meter::annotate`).
    pub cost_usd: Option<f64>,
    /// The provider reported no usage: the cost is estimated from what was sent and received.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryReport {
    pub model: String,
    pub status: SummaryStatus,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Summary models that failed before this one answered (fallbacks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failure>,
    /// USD over the summary phase (failed fallbacks included); `null` when a model has no price.
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
}

/// The `n1` extension object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct N1Meta {
    pub ensemble: String,
    /// The path the request took.
    pub route: Route,
    pub panel: Vec<MemberReport>,
    /// Successful panel answers / panel size.
    pub panel_ok: usize,
    pub panel_total: usize,
    pub panel_end: PanelEnd,
    pub summary: SummaryReport,
    /// True when fewer than all panel members contributed, or the summary fell back.
    pub degraded: bool,
    /// Every layer's reports, when the ensemble has more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Vec<MemberReport>>>,
    /// Tools of the request that N-1 cannot run, dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_tools: Vec<String>,
    /// USD over every call; `null` when any call's model has no price.
    pub cost_usd: Option<f64>,
    /// Some call's cost is estimated (its provider reported no usage).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
}

/// A panel member in a `panel_start` event.
#[derive(Debug, Serialize)]
pub struct PanelEntry<'a> {
    pub index: usize,
    pub model: &'a str,
}

/// Progress of a stream, for clients that asked for it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress<'a> {
    PanelStart {
        panel: Vec<PanelEntry<'a>>,
        summary: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<usize>,
    },
    /// One member finished (its answer in `content`).
    PanelMember {
        index: usize,
        model: &'a str,
        status: MemberStatus,
        latency_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttft_ms: Option<u64>,
        attempts: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a Failure>,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<&'a str>,
    },
    /// A member's text since its last delta, while it answers (at most one
    /// per member per 100 ms).
    PanelDelta {
        index: usize,
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<usize>,
        content: &'a str,
    },
    PanelDone {
        panel_ok: usize,
        panel_total: usize,
        end: PanelEnd,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<usize>,
    },
    SummaryStart {
        model: &'a str,
    },
}
