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
    // `stream_status_feedback` became progress events.
    assert!(e.policy.progress);
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

// ---- every field of a model and an ensemble

fn one(e: Value) -> Result<Config, String> {
    parse_config(&json!({"ensembles": {"e": e}}).to_string(), ConfigOptions::default())
}

fn ens(e: Value) -> Ensemble {
    one(e).unwrap().ensembles.remove(0)
}

fn m() -> Value {
    json!({"endpoint": "https://a.test/v1", "model": "m"})
}

#[test]
fn every_model_field_is_read() {
    let e = ens(json!({"summary": {
        "endpoint": "https://a.test/v1?api-version=1", "model": "m", "temperature": 0.25, "api_key_secret": "KEY",
        "timeout_ms": 1500, "max_retries": 4, "headers": {"x-org": "o"}, "max_tokens": 321, "extra_body": {"top_k": 3}
    }}));
    let s = &e.summary[0];
    assert_eq!(s.provider, Provider::Openai);
    assert_eq!(s.endpoint, "https://a.test/v1/chat/completions?api-version=1");
    assert_eq!((s.temperature, s.timeout_ms, s.max_retries, s.max_tokens), (Some(0.25), Some(1500), Some(4), Some(321)));
    assert_eq!(s.api_key, ApiKey::Secret("KEY".into()));
    assert_eq!(s.headers, [("x-org".to_owned(), "o".to_owned())]);
    assert_eq!(s.extra_body.get("top_k"), Some(&json!(3)));
    // Nulls are absent.
    let e = ens(json!({"summary": {"endpoint": "https://a.test", "model": "m", "temperature": null, "headers": null, "api_key_secret": null}}));
    assert_eq!((e.summary[0].temperature, &e.summary[0].api_key), (None, &ApiKey::None));
}

#[test]
fn endpoints_per_provider() {
    let s = |model: Value| ens(json!({"summary": model})).summary.remove(0);
    let a = s(json!({"provider": "anthropic", "model": "claude"}));
    assert_eq!((a.provider, a.endpoint.as_str()), (Provider::Anthropic, "https://api.anthropic.com/v1/messages"));
    assert_eq!(s(json!({"provider": "anthropic", "model": "c", "endpoint": "https://gw.test/anthropic/v1"})).endpoint, "https://gw.test/anthropic/v1/messages");
    let w = s(json!({"provider": "workers-ai", "model": "@cf/x"}));
    assert_eq!((w.provider, w.endpoint.as_str()), (Provider::WorkersAi, ""));
    // Workers AI has no endpoint to check.
    assert_eq!(s(json!({"provider": "workers-ai", "model": "@cf/x", "endpoint": "http://ignored"})).endpoint, "");
    let e = one(json!({"summary": {"model": "m"}})).unwrap_err();
    assert!(e.contains("ensembles.e.summary[0]") && e.contains("`endpoint` is required"), "{e}");
    let e = one(json!({"summary": {"provider": "gemini", "model": "m"}})).unwrap_err();
    assert!(e.contains("`openai`, `anthropic`, `workers-ai`") && !e.contains("gemini"), "{e}");
}

#[test]
fn every_ensemble_field_is_read() {
    let e = ens(json!({
        "description": "D", "panel": [m(), m()], "summary": [m(), {"endpoint": "https://b.test", "model": "fallback"}], "synthesis_prompt": "P",
        "min_panel": 1, "quorum": 2, "panel_timeout_ms": 100, "request_timeout_ms": 1000, "on_summary_failure": "error", "progress": false,
        "keep_alive_ms": 250, "max_answer_chars": 500, "layers": 3, "keep_history": false,
        "vision": {"panel": [m()], "summary": {"endpoint": "https://v.test", "model": "v"}}
    }));
    assert_eq!((e.description.as_deref(), e.synthesis_prompt.as_deref()), (Some("D"), Some("P")));
    assert_eq!((e.layers, e.keep_history), (3, false));
    assert_eq!((e.policy.keep_alive_ms, e.policy.max_answer_chars), (250, 500));
    assert_eq!(e.policy.on_summary_failure, OnSummaryFailure::Error);
    assert_eq!(e.summary[1].model, "fallback");
    let v = e.vision.as_ref().unwrap();
    assert_eq!((v.panel.len(), v.summary[0].model.as_str()), (1, "v"));
    // Defaults.
    let d = ens(json!({"summary": m()}));
    assert_eq!((d.layers, d.keep_history, d.vision.is_none(), d.panel.is_empty()), (1, true, true, true));
    assert_eq!((d.policy.keep_alive_ms, d.policy.max_answer_chars, d.policy.request_timeout_ms), (DEFAULT_KEEP_ALIVE_MS, DEFAULT_MAX_ANSWER_CHARS, DEFAULT_REQUEST_TIMEOUT_MS));
}

#[test]
fn inconsistent_ensembles_are_refused() {
    for (bad, says) in [
        (json!({"summary": m(), "layers": 0}), "`layers` must be between 1 and 4"),
        (json!({"panel": [m()], "summary": m(), "layers": 5}), "`layers` must be between 1 and 4"),
        (json!({"summary": m(), "layers": 2}), "`layers` needs a panel"),
        (json!({"summary": m(), "keep_alive_ms": 99}), "`keep_alive_ms` at least 100"),
        (json!({"summary": m(), "panel_timeout_ms": 0}), "timeouts must be positive"),
        (json!({"summary": m(), "max_answer_chars": 99}), "`max_answer_chars` must be at least 100"),
        (json!({"summary": []}), "has no summary model"),
        (json!({"panel": [m()]}), "ensembles.e.summary is required"),
        (json!({"summary": m(), "vision": {"panel": [m()], "summary": []}}), "`vision` needs a summary model"),
        (json!({"summary": {"endpoint": "https://a.test", "model": ""}}), "ensembles.e.summary[0]: `model` must not be empty"),
        (json!({"summary": {"endpoint": "https://a.test", "model": "m", "temperature": 2.5}}), "`temperature` must be between 0 and 2"),
        (json!({"summary": {"endpoint": "https://a.test", "model": "m", "api_key_secret": ""}}), "`api_key_secret` must not be empty"),
        (json!({"summary": m(), "vision": {"summary": {"endpoint": "http://v.test", "model": "v"}}}), "ensembles.e.vision.summary[0]"),
    ] {
        let e = one(bad.clone()).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn wrong_types_name_the_field_and_never_the_value() {
    for (bad, says) in [
        (json!({"summary": m(), "min_panel": "2"}), "ensembles.e: `min_panel` must be a whole number"),
        (json!({"summary": m(), "quorum": -1}), "`quorum` must be a whole number"),
        (json!({"summary": m(), "progress": "yes"}), "`progress` must be true or false"),
        (json!({"summary": m(), "description": 5}), "`description` must be a string"),
        (json!({"summary": m(), "panel": {}}), "`panel` must be an array"),
        (json!({"summary": m(), "panel": [5]}), "ensembles.e.panel[0]: must be an object"),
        (json!({"summary": m(), "on_summary_failure": "shrug-sk-123"}), "one of `error`, `best_panel_answer`"),
        (json!({"summary": {"endpoint": "https://a.test", "model": "m", "headers": {"x": 1}}}), "`headers` values must be strings"),
        (json!({"summary": {"endpoint": "https://a.test", "model": "m", "extra_body": "sk-123"}}), "`extra_body` must be an object"),
        (json!({"summary": {"endpoint": 7, "model": "m"}}), "`endpoint` must be a string"),
        (json!({"summary": m(), "vision": []}), "ensembles.e.vision: must be an object"),
    ] {
        let e = one(bad.clone()).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(!e.contains("sk-123") && !e.contains("shrug"), "{e}");
    }
    assert_eq!(parse_config("[1]", ConfigOptions::default()).unwrap_err(), "the configuration must be a JSON object");
}

#[test]
fn unknown_fields_are_errors_everywhere() {
    let top = parse_config(&json!({"ensembles": {"e": {"summary": m()}}, "ensembels": 1}).to_string(), ConfigOptions::default()).unwrap_err();
    assert!(top.contains("unknown field `ensembels`") && top.contains("`ensembles`"), "{top}");
    let e = one(json!({"summary": m(), "qourum": 1})).unwrap_err();
    assert!(e.contains("ensembles.e: unknown field `qourum`") && e.contains("`quorum`"), "{e}");
    let e = one(json!({"summary": m(), "vision": {"summary": m(), "panle": []}})).unwrap_err();
    assert!(e.contains("ensembles.e.vision: unknown field `panle`"), "{e}");
    // A named model's typo is reported where the model is defined.
    let e = parse_config(&json!({"models": {"a": {"endpoint": "https://a.test", "model": "m", "temprature": 1}}, "ensembles": {"e": {"summary": "a"}}}).to_string(), ConfigOptions::default()).unwrap_err();
    assert!(e.contains("models.a: unknown field `temprature`"), "{e}");
}

#[test]
fn ensembles_are_sorted_by_name() {
    let c = parse_config(&json!({"ensembles": {"zeta": {"summary": m()}, "alpha": {"summary": m()}, "mid": {"summary": m()}}}).to_string(), ConfigOptions::default()).unwrap();
    let names: Vec<&str> = c.ensembles.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    assert_eq!(c.default_ensemble, "alpha");
}

#[test]
fn images_go_to_the_vision_models() {
    let e = ens(json!({"panel": [m()], "summary": m(), "vision": {"panel": [{"endpoint": "https://v.test", "model": "vp"}], "summary": {"endpoint": "https://v.test", "model": "vs"}}}));
    let text = e.lineup(false, Route::Ensemble).unwrap();
    assert_eq!((text.panel[0].model.as_str(), text.summary[0].model.as_str()), ("m", "m"));
    let vision = e.lineup(true, Route::Ensemble).unwrap();
    assert_eq!((vision.panel[0].model.as_str(), vision.summary[0].model.as_str()), ("vp", "vs"));
    let names: Vec<&str> = e.models().map(|m| m.model.as_str()).collect();
    assert_eq!(names, ["m", "m", "vp", "vs"]);
    let blind = ens(json!({"summary": m()}));
    let err = blind.lineup(true, Route::Ensemble).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.code(), Some("vision_not_supported"));
    assert!(err.message().contains("`e` has no vision models"), "{}", err.message());
    assert!(blind.lineup(false, Route::Ensemble).is_ok());
}

#[test]
fn the_models_list_describes_each_ensemble() {
    let c = parse_config(&native().to_string(), ConfigOptions::default()).unwrap();
    let info = serde_json::to_value(c.ensemble(Some("solo")).unwrap().info(&c)).unwrap();
    assert_eq!(info, json!({"panel": ["model-a"], "panel_size": 1, "summary": "model-a", "summary_fallbacks": ["model-a"], "layers": 1, "vision": false, "default": false}));
    let info = serde_json::to_value(c.ensemble(None).unwrap().info(&c)).unwrap();
    assert_eq!(info["default"], true);
    assert_eq!(info["panel"], json!(["model-a", "model-b"]));
    assert!(info.get("summary_fallbacks").is_none() && info.get("description").is_none(), "{info}");
}

#[test]
fn the_original_format_in_detail() {
    let cfg = |v: Value| parse_config(&v.to_string(), ConfigOptions::default());
    let s = json!({"endpoint": "https://x.test/v1", "model_name": "s"});
    let c = cfg(json!({"models": [{"endpoint": "https://x.test/v1", "model_name": "a", "bearer_token": "", "timeout": 0, "unknown_field": 1}], "summary_model": s})).unwrap();
    let e = &c.ensembles[0];
    assert_eq!(e.name, LEGACY_ENSEMBLE);
    assert_eq!(e.panel[0].endpoint, "https://x.test/v1/chat/completions");
    assert_eq!(e.panel[0].api_key, ApiKey::None, "an empty token is no key");
    assert_eq!(e.panel[0].timeout_ms, None, "a zero timeout is none");
    assert_eq!(e.panel[0].temperature, Some(0.7), "the original's default");
    assert!(!e.policy.progress);
    assert_eq!(c.legacy_client_key, None);
    // Our extension wins over a literal key.
    let c = cfg(json!({"models": [], "summary_model": {"endpoint": "https://x.test", "model_name": "s", "bearer_token": "lit", "api_key_secret": "SECRET_NAME"}})).unwrap();
    assert_eq!(c.ensembles[0].summary[0].api_key, ApiKey::Secret("SECRET_NAME".into()));
    assert!(c.ensembles[0].panel.is_empty());
    // Either marker makes it the original format; what it requires is named.
    assert!(cfg(json!({"models": [s]})).unwrap_err().contains("`summary_model` is required"));
    assert!(cfg(json!({"models": [], "summary_model": {"model_name": "s"}})).unwrap_err().contains("summary_model: `endpoint` is required"));
    assert!(cfg(json!({"models": [{"endpoint": "https://x.test"}], "summary_model": s})).unwrap_err().contains("models[0]: `model_name` is required"));
    // Its endpoints are checked like any other.
    assert!(cfg(json!({"models": [], "summary_model": {"endpoint": "http://x.test", "model_name": "s"}})).is_err());
}
