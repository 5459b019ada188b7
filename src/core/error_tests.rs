use super::*;
use serde_json::{json, Value};

fn openai(e: &N1Error) -> Value {
    serde_json::from_str(&e.openai_json()).unwrap()
}

#[test]
fn invalid_request_has_openai_shape() {
    let e = N1Error::invalid("`messages` is required", Some("messages"));
    assert_eq!(e.status(), 400);
    assert_eq!(
        openai(&e),
        json!({"error": {"message": "`messages` is required", "type": "invalid_request_error", "param": "messages", "code": null}})
    );
}

#[test]
fn model_not_found_is_404_with_code() {
    let e = N1Error::ModelNotFound("gpt-x".into());
    assert_eq!(e.status(), 404);
    let b = openai(&e);
    assert_eq!(b["error"]["code"], "model_not_found");
    assert_eq!(b["error"]["param"], "model");
}

#[test]
fn panel_failure_lists_each_model() {
    let e = N1Error::PanelFailed {
        answered: 0,
        needed: 1,
        failures: vec![
            Failure::new("a", Some(500), FailureKind::Error, "boom"),
            Failure::timeout("b", "no answer in 10 s"),
        ],
    };
    assert_eq!(e.status(), 502);
    let b = openai(&e);
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("a (HTTP 500): boom"), "{msg}");
    assert!(msg.contains("b (timeout): no answer in 10 s"), "{msg}");
    assert_eq!(b["error"]["failures"], json!([
        {"model": "a", "status": 500, "kind": "error", "reason": "boom"},
        {"model": "b", "kind": "timeout", "reason": "no answer in 10 s"}
    ]));
}

#[test]
fn every_variant_has_a_type_and_a_message() {
    for e in [
        N1Error::PayloadTooLarge(5),
        N1Error::MissingKey,
        N1Error::RateLimited(60),
        N1Error::ConfigMissing,
        N1Error::Internal("x".into()),
        N1Error::RequestTimeout(100),
        N1Error::Stream { message: "cut".into(), code: "stream_error" },
    ] {
        let b = openai(&e);
        assert!(b["error"]["type"].is_string() && b["error"]["message"].as_str().unwrap().len() > 2, "{b}");
        assert!(b["error"].get("failures").is_none());
    }
}
