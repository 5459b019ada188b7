use super::*;
use serde_json::json;

#[test]
fn reads_and_sums() {
    let a = Usage::from_json(&json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})).unwrap();
    let b = Usage::from_json(&json!({"prompt_tokens": 3, "completion_tokens": 4})).unwrap();
    assert_eq!(b.total_tokens, 7);
    let s = sum([&a, &b]);
    assert_eq!(s, Usage { prompt_tokens: 13, completion_tokens: 9, total_tokens: 22 });
}

#[test]
fn missing_or_odd_usage_is_none() {
    assert!(Usage::from_json(&json!(null)).is_none());
    assert!(Usage::from_json(&json!({})).is_none());
    assert!(Usage::from_json(&json!({"prompt_tokens": "x"})).is_none());
}
