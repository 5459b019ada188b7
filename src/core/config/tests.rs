use super::*;
use serde_json::json;

fn native() -> Value {
    json!({
        "default_ensemble": "council",
        "models": {
            "a": {"endpoint": "https://api.a.test/v1", "model": "model-a", "api_key_secret": "A_KEY", "temperature": 0.5}
        },
        "ensembles": {
            "council": {
                "panel": ["a", {"endpoint": "https://b.test/v1/chat/completions", "model": "model-b"}],
                "summary": "a",
                "synthesis_prompt": "Merge."
            },
            "solo": {"panel": ["a"], "summary": ["a", "a"]}
        }
    })
}

#[test]
fn parses_native_config_with_named_and_inline_models() {
    let c = parse_config(&native().to_string(), ConfigOptions::default()).unwrap();
    assert_eq!(c.default_ensemble, "council");
    let e = c.ensemble(None).unwrap();
    assert_eq!(e.panel.len(), 2);
    assert_eq!(e.panel[0].endpoint, "https://api.a.test/v1/chat/completions");
    assert_eq!(e.panel[0].api_key, ApiKey::Secret("A_KEY".into()));
    assert_eq!(e.panel[1].api_key, ApiKey::None);
    assert_eq!(e.synthesis_prompt.as_deref(), Some("Merge."));
    assert_eq!(c.ensemble(Some("solo")).unwrap().summary.len(), 2);
    assert!(c.ensemble(Some("nope")).is_none());
}

#[test]
fn default_is_first_ensemble_when_unset() {
    let mut v = native();
    v.as_object_mut().unwrap().remove("default_ensemble");
    let c = parse_config(&v.to_string(), ConfigOptions::default()).unwrap();
    assert_eq!(c.default_ensemble, "council");
}

#[test]
fn parses_the_original_n1_format() {
    let text = r#"{
        "api_bearer_token": "client-token",
        "models": [
            {"endpoint": "https://x.test/v1/chat/completions", "bearer_token": "k1", "model_name": "m1", "temperature": 0.7, "max_retries": 3, "timeout": 150},
            {"endpoint": "https://x.test/v1/chat/completions", "bearer_token": "k2", "model_name": "m2"}
        ],
        "summary_model": {"endpoint": "https://x.test/v1/chat/completions", "bearer_token": "k3", "model_name": "s", "temperature": 0.1, "summary_prompt": "Summarize.", "timeout": 150},
        "stream_status_feedback": true
    }"#;
    let c = parse_config(text, ConfigOptions::default()).unwrap();
    assert_eq!(c.default_ensemble, LEGACY_ENSEMBLE);
    let e = c.ensemble(None).unwrap();
    assert_eq!(e.panel[0].api_key, ApiKey::Literal("k1".into()));
    assert_eq!(e.panel[0].timeout_ms, Some(150_000));
    assert_eq!(e.panel[0].max_retries, Some(3));
    assert_eq!(e.panel[1].temperature, Some(0.7));
    assert_eq!(e.summary[0].model, "s");
    assert_eq!(e.synthesis_prompt.as_deref(), Some("Summarize."));
    assert_eq!(c.legacy_client_key.as_deref(), Some("client-token"));
    }

#[test]
fn errors_name_the_problem() {
    let err = |v: Value| parse_config(&v.to_string(), ConfigOptions::default()).unwrap_err();
    assert!(parse_config("{", ConfigOptions::default()).unwrap_err().contains("EOF"));
    assert!(err(json!({"ensembles": {}})).contains("at least one"));
    assert!(err(json!({"ensembles": {"e": {"panel": ["zz"], "summary": {"endpoint": "https://a.test", "model": "m"}}}})).contains("ensembles.e.panel[0]"));
    assert!(err(json!({"default_ensemble": "x", "ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m"}}}})).contains("defined: `e`"));
    assert!(err(json!({"ensembles": {"e": {"summary": {"endpoint": "ftp://a", "model": "m"}}}})).contains("endpoint"));
    assert!(err(json!({"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m", "temprature": 1}}}})).contains("summary"));
}

#[test]
fn policy_fields_parse_and_are_checked() {
    let m = json!({"endpoint": "https://a.test", "model": "m"});
    let ok = json!({"ensembles": {"e": {"panel": [m, m, m], "summary": m, "min_panel": 2, "quorum": 2,
        "panel_timeout_ms": 900, "request_timeout_ms": 5000, "on_summary_failure": "best_panel_answer", "progress": true}}});
    let c = parse_config(&ok.to_string(), ConfigOptions::default()).unwrap();
    let p = &c.ensembles[0].policy;
    assert_eq!((p.min_panel, p.quorum, p.panel_timeout_ms, p.request_timeout_ms), (2, Some(2), Some(900), 5000));
    assert_eq!(p.on_summary_failure, OnSummaryFailure::BestPanelAnswer);
    assert!(p.progress);
    let d = parse_config(&json!({"ensembles": {"e": {"panel": [m], "summary": m}}}).to_string(), ConfigOptions::default()).unwrap();
    assert_eq!(d.ensembles[0].policy, Policy::default());
    for bad in [json!({"min_panel": 4}), json!({"min_panel": 0}), json!({"quorum": 1, "min_panel": 2}), json!({"quorum": 9}),
                json!({"on_summary_failure": "shrug"}), json!({"request_timeout_ms": 0})] {
        let mut e = json!({"panel": [m, m, m], "summary": m});
        e.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        assert!(parse_config(&json!({"ensembles": {"e": e}}).to_string(), ConfigOptions::default()).is_err(), "{bad}");
    }
}

#[test]
fn legacy_status_feedback_turns_on_progress_events() {
    let text = r#"{"models": [{"endpoint": "https://x.test", "model_name": "a"}], "summary_model": {"endpoint": "https://x.test", "model_name": "s"}, "stream_status_feedback": true}"#;
    assert!(parse_config(text, ConfigOptions::default()).unwrap().ensembles[0].policy.progress);
}

#[test]
fn endpoints_must_be_https_except_allowed_loopback() {
    let cfg = |ep: &str| json!({"ensembles": {"e": {"summary": {"endpoint": ep, "model": "m"}}}}).to_string();
    let strict = ConfigOptions::default();
    let dev = ConfigOptions { allow_insecure_upstreams: true };
    assert!(parse_config(&cfg("https://api.test/v1"), strict).is_ok());
    for ep in ["http://127.0.0.1:9000/v1", "http://localhost/v1", "http://[::1]:8080", "http://127.1.2.3/v1"] {
        assert!(parse_config(&cfg(ep), strict).unwrap_err().contains("N1_ALLOW_INSECURE_UPSTREAMS"), "{ep}");
        assert!(parse_config(&cfg(ep), dev).is_ok(), "{ep}");
    }
    for ep in ["http://api.test/v1", "http://10.0.0.1/v1", "http://localhost.evil.test/v1", "http://127.0.0.1@evil.test/",
               "http://127.evil.test/v1", "http://127.0.0.1.evil.test/v1", "http://127.0.0.256/v1", "http://127.0.0/v1"] {
        assert!(parse_config(&cfg(ep), dev).is_err(), "{ep}");
    }
    assert!(parse_config(&cfg("file:///etc/passwd"), dev).is_err());
}

#[test]
fn errors_never_quote_config_values() {
    // serde quotes an unknown variant in backticks; a key in `provider` must not come back.
    let text = r#"{"ensembles": {"e": {"summary": {"provider": "sk-live-SECRET-123", "model": "m"}}}}"#;
    let e = parse_config(text, ConfigOptions::default()).unwrap_err();
    assert!(!e.contains("SECRET"), "{e}");
    assert!(e.contains("`openai`"), "the expected names are kept: {e}");
    let e = parse_config(r#"{"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": 7123456}}}}"#, ConfigOptions::default()).unwrap_err();
    assert!(!e.contains("7123456"), "{e}");
    // A typo in a field name is still named; a key-like field name is not.
    let e = parse_config(r#"{"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m", "temprature": 1}}}}"#, ConfigOptions::default()).unwrap_err();
    assert!(e.contains("`temprature`"), "{e}");
    let e = parse_config(r#"{"ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m", "sk-Live-KEY": 1}}}}"#, ConfigOptions::default()).unwrap_err();
    assert!(!e.contains("sk-Live-KEY"), "{e}");
    // A dangling model reference or default ensemble is not quoted either (the path says where).
    for text in [r#"{"ensembles": {"e": {"panel": ["sk-ref-SECRET"], "summary": {"endpoint": "https://a.test", "model": "m"}}}}"#,
                 r#"{"default_ensemble": "sk-def-SECRET", "ensembles": {"e": {"summary": {"endpoint": "https://a.test", "model": "m"}}}}"#] {
        let e = parse_config(text, ConfigOptions::default()).unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }
}

#[test]
fn errors_never_quote_string_values() {
    // A key pasted into a numeric field must not be echoed back.
    let text = r#"{"models": [], "summary_model": {"endpoint": "https://a.test", "model_name": "s", "temperature": "sk-SECRET"}}"#;
    let e = parse_config(text, ConfigOptions::default()).unwrap_err();
    assert!(!e.contains("sk-SECRET"), "{e}");
    assert!(e.contains("summary_model: `temperature` must be a number"), "{e}");
}
