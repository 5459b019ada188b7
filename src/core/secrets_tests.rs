use super::*;

#[test]
fn error_summaries_are_short_and_secret_free() {
    let s = Secrets::new(["sk-abcdef123456".to_owned()]);
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-abcdef123456. Find your key at https://x"}}"#;
    let r = s.summarize_error(body);
    assert!(!r.contains("sk-abcdef123456") && r.contains("[redacted]"), "{r}");
    let long = "x".repeat(1000);
    assert!(s.summarize_error(&long).chars().count() <= REASON_MAX + 1);
    assert_eq!(s.summarize_error("<html><body>502</body></html>"), "the upstream returned an HTML page");
    assert_eq!(s.summarize_error(""), "no error message");
    assert_eq!(s.summarize_error(r#"{"error": "plain"}"#), "plain");
    assert_eq!(s.summarize_error(r#"{"detail": "Not Found"}"#), "Not Found");
    assert_eq!(s.summarize_error(r#"{"message": "m"}"#), "m");
}

#[test]
fn scrub_joins_lines_and_ignores_tiny_values() {
    let s = Secrets::new(["ab".to_owned(), "key-1234".to_owned()]);
    assert_eq!(s.scrub("line one\n  line two key-1234 ab"), "line one line two [redacted] ab");
}

#[test]
fn the_reason_comes_from_the_first_field_that_is_text() {
    let s = Secrets::default();
    assert_eq!(s.summarize_error(r#"{"error":{"type":"x"},"message":"Try later"}"#), "Try later");
    assert_eq!(s.summarize_error(r#"{"error":null,"detail":"Not Found"}"#), "Not Found");
}
