//! Property tests (the fuzzing of this project: cargo-fuzz needs a nightly
//! toolchain these machines do not have). The chat request decoder, the config
//! parser, the key parser, the SSE parser and every provider's stream decoder
//! must never panic on any input; SSE parsing and stream decoding must not
//! depend on where reads split the bytes; whatever a decoder emits, the chat
//! encoder writes as well-formed events; an answer can never break out of its
//! fence in the synthesis prompt. `PROPTEST_CASES` raises the case count for a
//! longer run.

use n1::core::auth::parse_keys;
use n1::core::config::{parse_config, ConfigOptions, ModelSpec};
use n1::core::dialects::chat::{self, ChatStream};
use n1::core::dialects::{Encoder, ReplyIds};
use n1::core::ensemble::prompt::synthesis_system_message;
use n1::core::events::Event;
use n1::core::providers::{Call, Provider};
use n1::core::request::{Conversation, Limits};
use n1::core::sse::Parser;
use proptest::prelude::*;
use serde_json::{json, Value};

const PROVIDERS: [Provider; 3] = [Provider::Openai, Provider::Anthropic, Provider::WorkersAi];

/// Arbitrary JSON, biased toward the shapes the parsers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("user"), Just("assistant"), Just("system"), Just("tool"), Just("text"), Just("https://x.test/v1"), Just("function"),
            Just("image_url"), Just("anthropic"), Just("workers-ai"), Just("text_delta"), Just("tool_use"), Just("message_delta"),
            Just("content_block_start"), Just("content_block_delta"), Just("input_json_delta"), Just("[DONE]"), Just("stop"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("messages".to_owned()), Just("role".to_owned()), Just("content".to_owned()), Just("model".to_owned()),
            Just("type".to_owned()), Just("text".to_owned()), Just("stream".to_owned()), Just("n".to_owned()),
            Just("temperature".to_owned()), Just("ensembles".to_owned()), Just("panel".to_owned()), Just("summary".to_owned()),
            Just("endpoint".to_owned()), Just("models".to_owned()), Just("summary_model".to_owned()), Just("model_name".to_owned()),
            Just("quorum".to_owned()), Just("min_panel".to_owned()), Just("stream_options".to_owned()), Just("tools".to_owned()),
            Just("tool_calls".to_owned()), Just("function".to_owned()), Just("choices".to_owned()), Just("delta".to_owned()),
            Just("finish_reason".to_owned()), Just("usage".to_owned()), Just("error".to_owned()), Just("index".to_owned()),
            Just("response".to_owned()), Just("content_block".to_owned()), Just("partial_json".to_owned()), Just("provider".to_owned()),
            Just("image_url".to_owned()), Just("url".to_owned()), Just("arguments".to_owned()), Just("name".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Stream-like bytes: SSE lines of events every provider sends, of arbitrary
/// JSON, and of junk, with every kind of line ending.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let data = prop_oneof![
        Just(r#"{"choices":[{"index":0,"delta":{"content":"Hé 🎉"},"finish_reason":null}]}"#.to_owned()),
        Just(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{"}}]}}]}"#.to_owned()),
        Just(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#.to_owned()),
        Just(r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f"}}"#.to_owned()),
        Just(r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#.to_owned()),
        Just(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#.to_owned()),
        Just(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#.to_owned()),
        Just(r#"{"response":"tok","usage":{"prompt_tokens":1}}"#.to_owned()),
        Just(r#"{"error":{"message":"boom"}}"#.to_owned()),
        Just("[DONE]".to_owned()),
        json_value().prop_map(|v| v.to_string()),
        "[^\r\n]{0,20}",
    ];
    let line = prop_oneof![
        data.prop_map(|d| format!("data: {d}")),
        Just(": keep-alive".to_owned()),
        Just("event: message_delta".to_owned()),
        Just(String::new()),
        "[^\r\n]{0,12}",
    ];
    let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("\n\n"), Just("\r\n\r\n")];
    prop::collection::vec((line, eol), 0..12).prop_map(|lines| lines.into_iter().flat_map(|(l, e)| (l + e).into_bytes()).collect())
}

/// A decoder's whole output for these reads, as the relay drives it: events
/// (as text) until the first error, then the error or the end's verdict.
fn decode(p: Provider, reads: &[&[u8]]) -> (Vec<String>, String) {
    let mut d = p.decoder();
    let mut events = Vec::new();
    for r in reads {
        if let Err(e) = d.push(r, &mut |ev| events.push(format!("{ev:?}"))) {
            return (events, format!("{e:?}"));
        }
    }
    let end = d.end(&mut |ev| events.push(format!("{ev:?}")));
    (events, format!("{end:?}"))
}

fn split_at<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut reads = Vec::new();
    let mut last = 0;
    for p in points {
        reads.push(&bytes[last..p]);
        last = p;
    }
    reads.push(&bytes[last..]);
    reads
}

fn model(p: Provider) -> ModelSpec {
    let m = match p {
        Provider::Openai => json!({"endpoint": "https://x.test/v1", "model": "m", "temperature": 0.5, "max_tokens": 9, "extra_body": {"top_k": 2}}),
        Provider::Anthropic => json!({"provider": "anthropic", "model": "c", "temperature": 1.5, "extra_body": {"thinking": {"type": "enabled"}}}),
        Provider::WorkersAi => json!({"provider": "workers-ai", "model": "@cf/x", "max_tokens": 9}),
    };
    parse_config(&json!({"ensembles": {"e": {"summary": m}}}).to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0).summary.remove(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn request_decoder_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = chat::decode(&bytes);
    }

    #[test]
    fn request_decoder_never_panics_on_json(v in json_value()) {
        if let Ok(r) = chat::decode(v.to_string().as_bytes()) {
            prop_assert!(!r.messages.is_empty());
            let _ = r.check_limits(&Limits { max_messages: 3, max_chars: 10 });
            let _ = r.has_images();
        }
    }

    /// Whatever request decodes, every provider builds a JSON object of it.
    #[test]
    fn every_provider_builds_a_json_body_of_any_valid_request(v in json_value(), stream in any::<bool>(), with_tools in any::<bool>()) {
        let mut body = v;
        if let Value::Object(o) = &mut body {
            o.entry("messages").or_insert(json!([{"role": "user", "content": "x"}]));
        }
        if let Ok(r) = chat::decode(body.to_string().as_bytes()) {
            for p in PROVIDERS {
                let m = model(p);
                let call = Call { model: &m, conversation: Conversation { system: Some("S"), messages: &r.messages }, params: &r.params, stream, with_tools };
                let text = p.body(&call);
                let parsed: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{p:?}: {e}: {text}")))?;
                prop_assert!(parsed.is_object(), "{:?}: {}", p, text);
            }
        }
    }

    #[test]
    fn config_parser_never_panics(v in json_value(), text in ".{0,200}") {
        let _ = parse_config(&v.to_string(), ConfigOptions::default());
        let _ = parse_config(&text, ConfigOptions { allow_insecure_upstreams: true });
        let wrapped = json!({"ensembles": {"e": v}});
        let _ = parse_config(&wrapped.to_string(), ConfigOptions::default());
        let legacy = json!({"models": [v.clone()], "summary_model": v});
        let _ = parse_config(&legacy.to_string(), ConfigOptions::default());
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
        let mut p = Parser::new();
        let mut events = Vec::new();
        for read in split_at(src.as_bytes(), &cuts) {
            p.push(read, &mut events).unwrap();
        }
        p.finish(&mut events);
        let got: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        // A data line drops one leading space, as SSE says.
        let want: Vec<&str> = datas.iter().map(|d| d.as_str()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn every_decoder_never_panics_on_bytes(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..12), tail in any::<bool>()) {
        for p in PROVIDERS {
            let mut d = p.decoder();
            let mut failed = false;
            for c in &chunks {
                if d.push(c, &mut |_| {}).is_err() {
                    failed = true;
                    break;
                }
            }
            if tail && !failed {
                let _ = d.end(&mut |_| {});
            }
        }
    }

    #[test]
    fn every_decoder_never_panics_on_json_events(events in prop::collection::vec(json_value(), 0..8)) {
        let src: String = events.iter().map(|v| format!("data: {v}\n\n")).collect();
        for p in PROVIDERS {
            let _ = decode(p, &[src.as_bytes()]);
        }
    }

    /// Where reads split a stream changes nothing a decoder emits, nor how it ends.
    #[test]
    fn decoding_does_not_depend_on_read_boundaries(bytes in stream_bytes(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        for p in PROVIDERS {
            let whole = decode(p, &[&bytes]);
            let split = decode(p, &split_at(&bytes, &cuts));
            prop_assert_eq!(&split, &whole, "{:?}: {:?}", p, String::from_utf8_lossy(&bytes));
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(&decode(p, &singles), &whole, "{:?}: one byte per read", p);
        }
    }

    /// Whatever a decoder emits, the chat encoder writes events that parse
    /// back: JSON chunks with our identity, the text unchanged.
    #[test]
    fn whatever_is_decoded_is_encoded_as_well_formed_chunks(bytes in stream_bytes()) {
        for p in PROVIDERS {
            let ids = ReplyIds { id: "chatcmpl-x".into(), created: 1, model: "e\"n".into() };
            let mut enc = ChatStream::new(&ids, true);
            let mut out = Vec::new();
            let mut text = String::new();
            enc.start(&mut out);
            let mut d = p.decoder();
            let mut emit = |ev: Event<'_>| {
                if let Event::Text(t) = &ev {
                    text.push_str(t);
                }
                enc.event(&ev, &mut out);
            };
            if d.push(&bytes, &mut emit).is_ok() {
                let _ = d.end(&mut emit);
            }
            let mut parser = Parser::new();
            let mut events = Vec::new();
            parser.push(&out, &mut events).unwrap();
            parser.finish(&mut events);
            let mut relayed = String::new();
            for e in &events {
                let v: Value = serde_json::from_str(&e.data).map_err(|x| TestCaseError::fail(format!("{p:?}: {x}: {}", e.data)))?;
                prop_assert_eq!(v["id"].as_str(), Some("chatcmpl-x"));
                prop_assert_eq!(v["model"].as_str(), Some("e\"n"));
                if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                    relayed.push_str(t);
                }
            }
            prop_assert_eq!(relayed, text);
        }
    }

    /// Any text, through the encoder, comes back unchanged.
    #[test]
    fn any_text_round_trips_through_the_encoder(pieces in prop::collection::vec(any::<String>(), 0..6)) {
        let ids = ReplyIds { id: "chatcmpl-x".into(), created: 1, model: "e".into() };
        let mut enc = ChatStream::new(&ids, false);
        let mut out = Vec::new();
        enc.start(&mut out);
        for t in &pieces {
            enc.event(&Event::Text(t.as_str().into()), &mut out);
        }
        let mut parser = Parser::new();
        let mut events = Vec::new();
        parser.push(&out, &mut events).unwrap();
        prop_assert_eq!(events.len(), 1 + pieces.len());
        for (e, t) in events[1..].iter().zip(&pieces) {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            prop_assert_eq!(v["choices"][0]["delta"]["content"].as_str(), Some(t.as_str()));
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

    /// Cut answers cannot break out of their fence either.
    #[test]
    fn a_cut_answer_stays_fenced(answers in prop::collection::vec("(.{0,10}<\\/?answer.{0,10}){1,4}", 1..4), max in 100usize..140) {
        let refs: Vec<&str> = answers.iter().map(String::as_str).collect();
        let s = synthesis_system_message(None, &refs, max);
        let baseline = synthesis_system_message(None, &[], max);
        let count = |t: &str, pat: &str| t.to_ascii_lowercase().matches(pat).count();
        prop_assert_eq!(count(&s, "</answer"), count(&baseline, "</answer") + answers.len());
    }
}
