use super::*;
use serde_json::json;

#[test]
fn reads_and_sums() {
    let a = Usage::from_json(&json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})).unwrap();
    let b = Usage::from_json(&json!({"prompt_tokens": 3, "completion_tokens": 4})).unwrap();
    assert_eq!(b.total_tokens, 7);
    let s = sum([&a, &b]);
    assert_eq!(s, Usage { prompt_tokens: 13, completion_tokens: 9, total_tokens: 22, cached_tokens: 0, ..Usage::default() });
}

#[test]
fn missing_or_odd_usage_is_none() {
    assert!(Usage::from_json(&json!(null)).is_none());
    assert!(Usage::from_json(&json!({})).is_none());
    assert!(Usage::from_json(&json!({"prompt_tokens": "x"})).is_none());
}

#[test]
fn cached_tokens_are_read_summed_and_shown_only_when_there_are_any() {
    let u = Usage::from_json(&json!({"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}})).unwrap();
    assert_eq!(u.cached_tokens, 60);
    let mut s = u;
    s.add(&u);
    assert_eq!(s.cached_tokens, 120);
    assert_eq!(
        serde_json::to_value(u).unwrap(),
        json!({"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "prompt_tokens_details": {"cached_tokens": 60}})
    );
    assert_eq!(serde_json::to_value(Usage::new(1, 2)).unwrap(), json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}));
}
