use super::*;

fn f(status: Option<u16>, kind: FailureKind) -> Failure {
    Failure::new("m", status, kind, "")
}

#[test]
fn transient_failures_are_retried_others_not() {
    for s in [408, 429, 500, 502, 503, 504] {
        assert!(is_retryable(&f(Some(s), FailureKind::Error)), "{s}");
    }
    for s in [400, 401, 403, 404, 422, 200] {
        assert!(!is_retryable(&f(Some(s), FailureKind::Error)), "{s}");
    }
    assert!(is_retryable(&f(None, FailureKind::Error)), "network error");
    assert!(!is_retryable(&f(None, FailureKind::Timeout)));
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
