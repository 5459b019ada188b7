//! Property tests (the fuzzing of this project: cargo-fuzz needs a nightly
//! toolchain these machines do not have). The request validator, the config
//! parser, the SSE parser and the stream relay must never panic on any input,
//! and the SSE parser must not depend on where reads split the bytes.
//! `PROPTEST_CASES` raises the case count for a longer run.

use n1::auth::parse_keys;
use n1::config::{parse_config, ConfigOptions};
use n1::prompt::synthesis_system_message;
use n1::relay::Relay;
use n1::request::{check_limits, parse_chat_request, Limits};
use n1::response::ReplyIds;
use n1::sse::Parser;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, biased toward the shapes the parsers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
        prop_oneof![Just("user"), Just("assistant"), Just("system"), Just("tool"), Just("text"), Just("https://x.test/v1")].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("messages".to_owned()), Just("role".to_owned()), Just("content".to_owned()), Just("model".to_owned()),
            Just("type".to_owned()), Just("text".to_owned()), Just("stream".to_owned()), Just("n".to_owned()),
            Just("temperature".to_owned()), Just("ensembles".to_owned()), Just("panel".to_owned()), Just("summary".to_owned()),
            Just("endpoint".to_owned()), Just("models".to_owned()), Just("summary_model".to_owned()), Just("model_name".to_owned()),
            Just("quorum".to_owned()), Just("min_panel".to_owned()), Just("stream_options".to_owned()), "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn request_validator_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_chat_request(&bytes);
    }

    #[test]
    fn request_validator_never_panics_on_json(v in json_value()) {
        if let Ok(r) = parse_chat_request(v.to_string().as_bytes()) {
            prop_assert!(!r.messages().is_empty());
            let _ = check_limits(&r, &Limits { max_messages: 3, max_chars: 10 });
        }
    }

    #[test]
    fn config_parser_never_panics(v in json_value(), text in ".{0,200}") {
        let _ = parse_config(&v.to_string(), ConfigOptions::default());
        let _ = parse_config(&text, ConfigOptions { allow_insecure_upstreams: true });
        let wrapped = json!({"ensembles": {"e": v}});
        let _ = parse_config(&wrapped.to_string(), ConfigOptions::default());
    }

    #[test]
    fn key_list_parser_never_panics(text in ".{0,200}") {
        let _ = parse_keys(&text);
    }

    #[test]
    fn sse_parser_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in &chunks {
            let _ = p.push(c, &mut out);
        }
        p.finish(&mut out);
    }

    #[test]
    fn sse_parsing_does_not_depend_on_read_boundaries(
        datas in prop::collection::vec("[^\r\n]{0,40}", 1..8),
        endings in prop::collection::vec(prop_oneof![Just("\n"), Just("\r\n"), Just("\r")], 8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut src = String::new();
        for (i, d) in datas.iter().enumerate() {
            let eol = endings[i % endings.len()];
            src.push_str(&format!(": comment{eol}data: {d}{eol}{eol}"));
        }
        let bytes = src.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut p = Parser::new();
        let mut events = Vec::new();
        let mut last = 0;
        for &cut in &points {
            p.push(&bytes[last..cut], &mut events).unwrap();
            last = cut;
        }
        p.push(&bytes[last..], &mut events).unwrap();
        p.finish(&mut events);
        let got: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        // A data line drops one leading space, as SSE says.
        let want: Vec<&str> = datas.iter().map(|d| d.as_str()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn relay_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..12), tail in any::<bool>()) {
        let mut r = Relay::new(ReplyIds { id: "chatcmpl-x".into(), created: 1, model: "m".into() }, vec!["secret-key".into()]);
        let mut out = Vec::new();
        for c in &chunks {
            if r.push(c, &mut out).is_err() {
                return Ok(());
            }
        }
        if tail {
            let _ = r.end(&mut out);
        }
    }

    #[test]
    fn an_answer_can_never_open_or_close_a_fence(answers in prop::collection::vec(".{0,60}|(<\\/?[aA][nN][sS][wW][eE][rR][^>]{0,8}>?){1,3}", 0..5)) {
        let refs: Vec<&str> = answers.iter().map(String::as_str).collect();
        let s = synthesis_system_message(None, &refs, usize::MAX);
        let baseline = synthesis_system_message(None, &[], usize::MAX);
        let count = |t: &str, pat: &str| t.to_ascii_lowercase().matches(pat).count();
        prop_assert_eq!(count(&s, "<answer"), count(&baseline, "<answer") + answers.len());
        prop_assert_eq!(count(&s, "</answer"), count(&baseline, "</answer") + answers.len());
    }
}
