//! Retries of one upstream call: which failures are worth another attempt,
//! how long to wait (exponential backoff with jitter, or the upstream's
//! `Retry-After`), and never past the caller's deadline.

use crate::error::Failure;

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
        None => f.kind == "error",
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

/// `Retry-After` as delta-seconds (`"2"`, `"1.5"`), or OpenAI's `retry-after-ms`.
/// HTTP dates are converted by the caller, who has a clock.
pub fn parse_retry_after(seconds: Option<&str>, millis: Option<&str>) -> Option<u64> {
    if let Some(ms) = millis.and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(ms as u64);
    }
    seconds
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|s| (s * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(status: Option<u16>, kind: &'static str) -> Failure {
        Failure { model: "m".into(), status, kind, reason: String::new(), retry_after_ms: None }
    }

    #[test]
    fn transient_failures_are_retried_others_not() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable(&f(Some(s), "error")), "{s}");
        }
        for s in [400, 401, 403, 404, 422, 200] {
            assert!(!is_retryable(&f(Some(s), "error")), "{s}");
        }
        assert!(is_retryable(&f(None, "error")), "network error");
        assert!(!is_retryable(&f(None, "timeout")));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        assert_eq!(backoff_ms(0, None, 0.0), 250);
        assert_eq!(backoff_ms(0, None, 0.999_999), 499);
        assert_eq!(backoff_ms(1, None, 0.0), 500);
        assert_eq!(backoff_ms(2, None, 0.0), 1000);
        assert_eq!(backoff_ms(30, None, 0.999_999), 7999);
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        assert_eq!(backoff_ms(0, Some(1200), 0.5), 1200);
        assert_eq!(backoff_ms(0, Some(3_600_000), 0.5), MAX_RETRY_AFTER_MS);
    }

    #[test]
    fn parses_retry_after_forms() {
        assert_eq!(parse_retry_after(Some("2"), None), Some(2000));
        assert_eq!(parse_retry_after(Some(" 1.5 "), None), Some(1500));
        assert_eq!(parse_retry_after(Some("2"), Some("350")), Some(350));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None), None);
        assert_eq!(parse_retry_after(Some("-3"), None), None);
        assert_eq!(parse_retry_after(None, None), None);
    }
}
