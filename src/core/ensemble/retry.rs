//! Retries of one upstream call: which failures are worth another attempt,
//! how long to wait (exponential backoff with jitter, or the upstream's
//! `Retry-After`), and never past the caller's deadline.

use std::cell::Cell;
use std::future::Future;

use super::Runtime;
use crate::core::config::ModelSpec;
use crate::core::error::{Failure, FailureKind};

/// Retries after the first attempt when a model sets no `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Per-attempt timeout when a model sets no `timeout_ms`: long answers take minutes.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;
const BASE_BACKOFF_MS: f64 = 500.0;
const MAX_BACKOFF_MS: f64 = 8_000.0;
/// A longer `Retry-After` is cut to this; the deadline may cut it further.
pub const MAX_RETRY_AFTER_MS: u64 = 20_000;

/// Network errors, 408, 429 and 5xx are transient; other 4xx will fail again,
/// and a timed-out attempt already spent its budget.
pub fn is_retryable(f: &Failure) -> bool {
    match f.status {
        None => f.kind == FailureKind::Error,
        Some(s) => s == 408 || s == 429 || (500..600).contains(&s),
    }
}

/// Wait before retry number `attempt` (0-based), given a random `r` in [0, 1).
/// `Retry-After` wins when the upstream sent one.
pub fn backoff_ms(attempt: u32, retry_after_ms: Option<u64>, r: f64) -> u64 {
    if let Some(ra) = retry_after_ms {
        return ra.min(MAX_RETRY_AFTER_MS);
    }
    let exp = (BASE_BACKOFF_MS * 2f64.powi(attempt.min(16) as i32)).min(MAX_BACKOFF_MS);
    // Jitter in [50%, 100%) spreads out clients that failed together.
    (exp * (0.5 + 0.5 * r.clamp(0.0, 1.0))) as u64
}

/// Run `attempt` (given its timeout) until it succeeds, fails for good, or the
/// next try would not fit before `deadline`. `tries` counts the attempts made,
/// live, so a call cut short (quorum, panel deadline) still reports its count.
pub async fn with_retries<R, T, F, Fut>(rt: &R, m: &ModelSpec, deadline: f64, tries: &Cell<u32>, mut attempt: F) -> Result<T, Failure>
where
    R: Runtime,
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let max_retries = m.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
    loop {
        let left = deadline - rt.now_ms();
        if left < 1.0 {
            return Err(Failure::timeout(&m.model, "the deadline passed before it could answer"));
        }
        let timeout = m.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).min(left as u64);
        let n = tries.get() + 1;
        tries.set(n);
        match attempt(timeout).await {
            Ok(v) => return Ok(v),
            Err(f) if n <= max_retries && is_retryable(&f) => {
                let wait = backoff_ms(n - 1, f.retry_after_ms, rt.random());
                if rt.now_ms() + wait as f64 >= deadline {
                    return Err(f);
                }
                rt.sleep(wait).await;
            }
            Err(f) => return Err(f),
        }
    }
}

/// `Retry-After` as delta-seconds (`"2"`, `"1.5"`), or OpenAI's `retry-after-ms`.
/// HTTP dates are converted by the caller, who has a clock.
pub fn parse_retry_after(seconds: Option<&str>, millis: Option<&str>) -> Option<u64> {
    // Parsed as JSON numbers: serde_json's float parser is in the build anyway.
    let number = |v: &str| serde_json::from_str::<serde_json::Value>(v.trim()).ok()?.as_f64().filter(|v| v.is_finite() && *v >= 0.0);
    if let Some(ms) = millis.and_then(number) {
        return Some(ms as u64);
    }
    seconds.and_then(number).map(|s| (s * 1000.0) as u64)
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
