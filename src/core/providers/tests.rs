//! Every provider against the same scenarios (a text answer, reasoning, a tool
//! call, usage, a cut answer), each in the provider's stream format and reply
//! format: the decoded answers must be the same whatever the format and
//! wherever reads split the bytes. Then what is particular to each provider:
//! the upstream bodies, and stream and reply details. (Workers AI's own cases:
//! `workers_ai_tests.rs`.)

use super::*;
use crate::core::config::{parse_config, ConfigOptions};
use crate::core::dialects::chat;
use crate::core::events::{Event, Finish, ReasoningField};
use crate::core::request::{Request, ToolCall};
use crate::core::secrets::Secrets;
use crate::core::usage::Usage;
use serde_json::{json, Value};
use std::borrow::Cow;

// ---- helpers

pub(super) fn spec_of(v: Value) -> ModelSpec {
    let cfg = json!({"ensembles": {"e": {"summary": v}}});
    parse_config(&cfg.to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0).summary.remove(0)
}

fn spec(p: Provider) -> ModelSpec {
    match p {
        Provider::Openai => spec_of(json!({"endpoint": "https://x.test/v1", "model": "m"})),
        Provider::Anthropic => spec_of(json!({"provider": "anthropic", "model": "claude-x"})),
        Provider::WorkersAi => spec_of(json!({"provider": "workers-ai", "model": "@cf/x/y"})),
    }
}

pub(super) fn req(v: Value) -> Request {
    chat::decode(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The upstream body as text and as JSON.
pub(super) fn body_text(p: Provider, m: &ModelSpec, r: &Request, system: Option<&str>, stream: bool, with_tools: bool) -> (String, Value) {
    let call = Call { model: m, conversation: Conversation { system, messages: &r.messages }, params: &r.params, stream, with_tools };
    let text = p.body(&call);
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, v)
}

pub(super) fn body(p: Provider, m: &ModelSpec, r: &Request, stream: bool, with_tools: bool) -> Value {
    body_text(p, m, r, None, stream, with_tools).1
}

pub(super) fn owned(ev: Event<'_>) -> Event<'static> {
    let o = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
    match ev {
        Event::Text(t) => Event::Text(o(t)),
        Event::Reasoning(f, t) => Event::Reasoning(f, o(t)),
        Event::ToolCall { index, id, name, arguments } => Event::ToolCall { index, id: id.map(o), name: name.map(o), arguments: o(arguments) },
        Event::Usage(u) => Event::Usage(u),
        Event::Finish(f) => Event::Finish(f),
    }
}

/// What a decoder made of a stream read by read.
#[derive(Debug, PartialEq)]
pub(super) struct Decoded {
    pub events: Vec<Event<'static>>,
    pub result: Result<(), StreamError>,
}

impl Decoded {
    pub fn completion(&self) -> Completion {
        let mut c = Completion::default();
        for e in &self.events {
            c.collect(e.clone());
        }
        c
    }
    pub fn text(&self) -> String {
        self.completion().text
    }
    pub fn finishes(&self) -> Vec<Finish> {
        self.events.iter().filter_map(|e| if let Event::Finish(f) = e { Some(f.clone()) } else { None }).collect()
    }
}

/// Decode `reads`, stopping at the first error as the relay does; `end` only when every read went well.
pub(super) fn decode_reads(p: Provider, reads: &[&[u8]]) -> Decoded {
    let mut d = p.decoder();
    let mut events = Vec::new();
    for r in reads {
        if let Err(e) = d.push(r, &mut |ev| events.push(owned(ev))) {
            return Decoded { events, result: Err(e) };
        }
    }
    let result = d.end(&mut |ev| events.push(owned(ev)));
    Decoded { events, result }
}

pub(super) fn decode(p: Provider, bytes: &str) -> Decoded {
    decode_reads(p, &[bytes.as_bytes()])
}

fn usage(p: u64, c: u64) -> Usage {
    Usage { prompt_tokens: p, completion_tokens: c, total_tokens: p + c, cached_tokens: 0 }
}

// ---- one answer in every format

#[derive(Clone, Copy, Debug, PartialEq)]
enum Wire {
    /// Chat completion chunks (OpenAI and compatibles; Workers AI's 2026 models).
    OpenAi,
    /// Messages API events.
    Anthropic,
    /// Workers AI's `{"response": …}` events.
    WorkersAiNative,
}

/// Each provider with each format it reads.
const PAIRS: [(Provider, Wire); 4] =
    [(Provider::Openai, Wire::OpenAi), (Provider::Anthropic, Wire::Anthropic), (Provider::WorkersAi, Wire::WorkersAiNative), (Provider::WorkersAi, Wire::OpenAi)];

struct ToolScript {
    id: &'static str,
    name: &'static str,
    /// The arguments' JSON text, in the pieces it streams in.
    args: &'static [&'static str],
}

struct Scenario {
    name: &'static str,
    reasoning: Option<&'static str>,
    text: &'static [&'static str],
    tool: Option<ToolScript>,
    finish: Finish,
    usage: (u64, u64),
}

const WEATHER: ToolScript = ToolScript { id: "call_0", name: "get_weather", args: &["{\"city\":", "\"Oslo\"", "}"] };

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario { name: "text", reasoning: None, text: &["Hel", "lo, wörld 🎉", " \"quoted\"\n\\ end"], tool: None, finish: Finish::Stop, usage: (3, 2) },
        Scenario { name: "tool call", reasoning: None, text: &[], tool: Some(WEATHER), finish: Finish::ToolCalls, usage: (5, 7) },
        Scenario { name: "text and tool call", reasoning: None, text: &["Let me check."], tool: Some(WEATHER), finish: Finish::ToolCalls, usage: (5, 9) },
        Scenario { name: "reasoning", reasoning: Some("think… 2+2"), text: &["4"], tool: None, finish: Finish::Stop, usage: (4, 6) },
        Scenario { name: "cut short", reasoning: None, text: &["cut sh"], tool: None, finish: Finish::Length, usage: (2, 1) },
    ]
}

impl Scenario {
    fn expected(&self) -> Completion {
        Completion {
            text: self.text.concat(),
            reasoning: self.reasoning.map(|r| (ReasoningField::ReasoningContent, r.to_owned())),
            tool_calls: self.tool.iter().map(|t| ToolCall::function(t.id, t.name, t.args.concat())).collect(),
            finish: self.finish.clone(),
            usage: Some(usage(self.usage.0, self.usage.1)),
        }
    }
}

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn sse_named(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// The scenario as a stream in `wire`'s format: (the answer, the end markers),
/// each event whole. `None`: the format cannot carry it.
fn stream_of(wire: Wire, s: &Scenario) -> Option<(String, String)> {
    let (p, c) = s.usage;
    match wire {
        Wire::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                sse(&json!({"id": "up-1", "object": "chat.completion.chunk", "created": 7, "model": "up-model", "system_fingerprint": "fp",
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}))
            };
            let mut body = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
            if let Some(r) = s.reasoning {
                body += &chunk(json!({"reasoning_content": r}), Value::Null);
            }
            for t in s.text {
                body += &chunk(json!({"content": t}), Value::Null);
            }
            if let Some(t) = &s.tool {
                for (i, a) in t.args.iter().enumerate() {
                    let call = if i == 0 {
                        json!({"index": 0, "id": t.id, "type": "function", "function": {"name": t.name, "arguments": a}})
                    } else {
                        json!({"index": 0, "function": {"arguments": a}})
                    };
                    body += &chunk(json!({"tool_calls": [call]}), Value::Null);
                }
            }
            let mut end = chunk(json!({}), json!(s.finish.as_openai()));
            end += &sse(&json!({"id": "up-1", "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}));
            end += "data: [DONE]\n\n";
            Some((body, end))
        }
        Wire::Anthropic => {
            let mut body = sse_named(
                "message_start",
                &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x",
                    "stop_reason": null, "usage": {"input_tokens": p, "output_tokens": 1}}}),
            );
            body += &sse_named("ping", &json!({"type": "ping"}));
            let mut block = 0;
            let mut open = |kind: Value, deltas: Vec<Value>| {
                let mut out = sse_named("content_block_start", &json!({"type": "content_block_start", "index": block, "content_block": kind}));
                for d in deltas {
                    out += &sse_named("content_block_delta", &json!({"type": "content_block_delta", "index": block, "delta": d}));
                }
                out += &sse_named("content_block_stop", &json!({"type": "content_block_stop", "index": block}));
                block += 1;
                out
            };
            if let Some(r) = s.reasoning {
                body += &open(json!({"type": "thinking", "thinking": ""}), vec![json!({"type": "thinking_delta", "thinking": r}), json!({"type": "signature_delta", "signature": "sig"})]);
            }
            if !s.text.is_empty() {
                body += &open(json!({"type": "text", "text": ""}), s.text.iter().map(|t| json!({"type": "text_delta", "text": t})).collect());
            }
            if let Some(t) = &s.tool {
                let deltas = t.args.iter().map(|a| json!({"type": "input_json_delta", "partial_json": a})).collect();
                body += &open(json!({"type": "tool_use", "id": t.id, "name": t.name, "input": {}}), deltas);
            }
            let stop = match s.finish {
                Finish::Stop => "end_turn",
                Finish::Length => "max_tokens",
                Finish::ToolCalls => "tool_use",
                _ => unreachable!(),
            };
            let mut end = sse_named("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": c}}));
            end += &sse_named("message_stop", &json!({"type": "message_stop"}));
            Some((body, end))
        }
        Wire::WorkersAiNative => {
            if s.reasoning.is_some() || s.tool.is_some() || s.finish != Finish::Stop {
                return None;
            }
            let mut body: String = s.text.iter().map(|t| sse(&json!({"response": t}))).collect();
            body += &sse(&json!({"response": "", "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}));
            Some((body, "data: [DONE]\n\n".into()))
        }
    }
}

/// The scenario as a non-streaming reply in `wire`'s format.
fn reply_of(wire: Wire, s: &Scenario) -> Option<String> {
    let (p, c) = s.usage;
    let args = |t: &ToolScript| t.args.concat();
    let input = |t: &ToolScript| serde_json::from_str::<Value>(&args(t)).unwrap();
    match wire {
        Wire::OpenAi => {
            let text = s.text.concat();
            let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if let Some(r) = s.reasoning {
                message["reasoning_content"] = json!(r);
            }
            if let Some(t) = &s.tool {
                message["tool_calls"] = json!([{"id": t.id, "type": "function", "function": {"name": t.name, "arguments": args(t)}}]);
            }
            Some(
                json!({"id": "up-1", "object": "chat.completion", "created": 7, "model": "up-model",
                    "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": s.finish.as_openai()}],
                    "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
                .to_string(),
            )
        }
        Wire::Anthropic => {
            let mut content = Vec::new();
            if let Some(r) = s.reasoning {
                content.push(json!({"type": "thinking", "thinking": r, "signature": "sig"}));
            }
            if !s.text.is_empty() {
                content.push(json!({"type": "text", "text": s.text.concat()}));
            }
            if let Some(t) = &s.tool {
                content.push(json!({"type": "tool_use", "id": t.id, "name": t.name, "input": input(t)}));
            }
            let stop = match s.finish {
                Finish::Stop => "end_turn",
                Finish::Length => "max_tokens",
                _ => "tool_use",
            };
            Some(
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": content,
                    "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": p, "output_tokens": c}})
                .to_string(),
            )
        }
        Wire::WorkersAiNative => {
            if s.reasoning.is_some() || s.finish == Finish::Length {
                return None;
            }
            let text = s.text.concat();
            let mut out = json!({"response": if text.is_empty() { Value::Null } else { json!(text) },
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}});
            if let Some(t) = &s.tool {
                out["tool_calls"] = json!([{"name": t.name, "arguments": input(t)}]);
            }
            Some(out.to_string())
        }
    }
}

/// An error event mid-stream in `wire`'s format; the message holds a key.
fn error_event(wire: Wire) -> String {
    match wire {
        Wire::OpenAi | Wire::WorkersAiNative => sse(&json!({"error": {"message": "Overloaded: key sk-live-SECRET-9", "type": "server_error"}})),
        Wire::Anthropic => sse_named("error", &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded: key sk-live-SECRET-9"}})),
    }
}

fn each_case(mut f: impl FnMut(Provider, Wire, &Scenario, String, String)) -> usize {
    let mut n = 0;
    for (p, wire) in PAIRS {
        for s in scenarios() {
            if let Some((body, end)) = stream_of(wire, &s) {
                f(p, wire, &s, body, end);
                n += 1;
            }
        }
    }
    n
}

#[test]
fn every_provider_decodes_every_scenario_from_its_stream() {
    let n = each_case(|p, wire, s, body, end| {
        let d = decode(p, &(body + &end));
        assert_eq!(d.result, Ok(()), "{p:?}/{wire:?}: {}", s.name);
        assert_eq!(d.completion(), s.expected(), "{p:?}/{wire:?}: {}", s.name);
        // One finish, after the answer; usage once.
        assert_eq!(d.finishes(), std::slice::from_ref(&s.finish), "{p:?}/{wire:?}: {}", s.name);
        let finish_at = d.events.iter().position(|e| matches!(e, Event::Finish(_))).unwrap();
        assert!(d.events[finish_at..].iter().all(|e| !e.is_content()), "{p:?}/{wire:?}: {}: {:?}", s.name, d.events);
        assert_eq!(d.events.iter().filter(|e| matches!(e, Event::Usage(_))).count(), 1, "{p:?}/{wire:?}: {}", s.name);
        // A tool call's id and name come with its first piece only.
        let calls: Vec<&Event> = d.events.iter().filter(|e| matches!(e, Event::ToolCall { .. })).collect();
        if let Some(t) = &s.tool {
            assert!(matches!(calls[0], Event::ToolCall { index: 0, id: Some(id), name: Some(n), .. } if id == t.id && n == t.name), "{calls:?}");
            assert!(calls[1..].iter().all(|e| matches!(e, Event::ToolCall { index: 0, id: None, name: None, .. })), "{calls:?}");
            assert!(calls.len() >= t.args.len(), "{p:?}/{wire:?}: arguments stream as they come: {calls:?}");
        } else {
            assert!(calls.is_empty());
        }
        // Text streams as it comes, not at the end.
        let texts = d.events.iter().filter(|e| matches!(e, Event::Text(_))).count();
        assert_eq!(texts, s.text.len(), "{p:?}/{wire:?}: {}: {:?}", s.name, d.events);
    });
    assert_eq!(n, 5 + 5 + 1 + 5);
}

#[test]
fn every_provider_parses_every_scenario_from_its_reply() {
    let mut n = 0;
    for (p, wire) in PAIRS {
        for s in scenarios() {
            let Some(reply) = reply_of(wire, &s) else { continue };
            n += 1;
            assert_eq!(p.parse_reply(&reply), Ok(s.expected()), "{p:?}/{wire:?}: {}", s.name);
        }
    }
    assert_eq!(n, 5 + 5 + 3 + 5);
}

#[test]
fn reads_split_at_every_byte_decode_the_same() {
    each_case(|p, wire, s, body, end| {
        for src in [body.clone() + &end, body.clone()] {
            let whole = decode(p, &src);
            let bytes = src.as_bytes();
            for cut in 0..=bytes.len() {
                let split = decode_reads(p, &[&bytes[..cut], &bytes[cut..]]);
                assert_eq!(split, whole, "{p:?}/{wire:?}: {}: cut at {cut}", s.name);
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(decode_reads(p, &singles), whole, "{p:?}/{wire:?}: {}: one byte per read", s.name);
            let threes: Vec<&[u8]> = bytes.chunks(3).collect();
            assert_eq!(decode_reads(p, &threes), whole, "{p:?}/{wire:?}: {}: three bytes per read", s.name);
        }
    });
}

#[test]
fn line_endings_and_field_spacing_do_not_matter() {
    each_case(|p, wire, s, body, end| {
        let src = body + &end;
        let want = decode(p, &src);
        // SSE joins the `data:` lines of one event with a new line, which JSON reads as space.
        let multi_line = src.replace("data: {", "data: {\ndata: ");
        for (what, variant) in [
            ("CRLF", src.replace('\n', "\r\n")),
            ("CR", src.replace('\n', "\r")),
            ("no space after the colon", src.replace("data: ", "data:")),
            ("comments", src.replace("\n\n", "\n\n: keep-alive\n\n")),
            ("multi-line data", multi_line.clone()),
            ("multi-line data, CRLF", multi_line.replace('\n', "\r\n")),
            ("multi-line data, CR", multi_line.replace('\n', "\r")),
        ] {
            assert_eq!(decode(p, &variant), want, "{p:?}/{wire:?}: {}: {what}", s.name);
            // Split after every CR (a CRLF split between its CR and its LF).
            let bytes = variant.as_bytes();
            for (i, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'\r') {
                assert_eq!(decode_reads(p, &[&bytes[..=i], &bytes[i + 1..]]), want, "{p:?}/{wire:?}: {}: {what}, split after the CR at {i}", s.name);
            }
        }
    });
}

#[test]
fn truncated_streams_are_errors_after_relaying_what_came() {
    each_case(|p, wire, s, body, _| {
        let d = decode(p, &body);
        assert_eq!(d.result, Err(StreamError::Truncated), "{p:?}/{wire:?}: {}", s.name);
        let c = d.completion();
        assert_eq!(c.text, s.text.concat(), "{p:?}/{wire:?}: {}", s.name);
        assert_eq!(c.tool_calls, s.expected().tool_calls, "{p:?}/{wire:?}: {}", s.name);
        assert!(d.finishes().is_empty(), "{p:?}/{wire:?}: {}: no finish of its own", s.name);
    });
}

#[test]
fn upstream_error_events_are_upstream_errors_and_scrubbable() {
    let secrets = Secrets::new(["sk-live-SECRET-9".to_owned()]);
    for (p, wire) in PAIRS {
        let s = &scenarios()[0];
        let (body, _) = stream_of(wire, s).unwrap_or_else(|| stream_of(Wire::OpenAi, s).unwrap());
        // The first text piece, then the error.
        let first_text = body.find(s.text[1]).map(|i| body[..i].rfind("data:").unwrap()).unwrap();
        let src = format!("{}{}", &body[..first_text], error_event(wire));
        let d = decode(p, &src);
        let Err(StreamError::Upstream(raw)) = &d.result else { panic!("{p:?}/{wire:?}: {:?}", d.result) };
        assert_eq!(secrets.summarize_error(raw), "Overloaded: key [redacted]", "{p:?}/{wire:?}: {raw}");
        assert_eq!(d.text(), s.text[0], "{p:?}/{wire:?}: what came before the error was relayed");
        let msg = StreamError::Upstream(raw.clone()).message(Some(&secrets.summarize_error(raw)));
        assert!(msg.contains("Overloaded: key [redacted]") && !msg.contains("SECRET"), "{msg}");
    }
}

#[test]
fn malformed_events_are_errors_in_every_format() {
    for p in [Provider::Openai, Provider::Anthropic, Provider::WorkersAi] {
        for bad in ["data: ###\n\n", "data: {\"unterminated\n\n", "data: {\"a\":1} trailing\n\n"] {
            let d = decode(p, bad);
            assert!(matches!(d.result, Err(StreamError::Malformed(_))), "{p:?}: {bad:?}: {:?}", d.result);
            assert!(d.events.is_empty());
        }
        // A line too long to be SSE.
        let mut dec = p.decoder();
        let big = vec![b'a'; crate::core::sse::MAX_LINE + 1];
        assert_eq!(dec.push(&big, &mut |_| {}), Err(StreamError::Malformed("a line without end")), "{p:?}");
    }
}

#[test]
fn empty_and_comment_only_streams_are_truncated() {
    for p in [Provider::Openai, Provider::Anthropic, Provider::WorkersAi] {
        assert_eq!(decode(p, "").result, Err(StreamError::Truncated), "{p:?}");
        assert_eq!(decode(p, ": ping\n\n: ping\n\n").result, Err(StreamError::Truncated), "{p:?}");
        assert!(decode(p, ": ping\n\n").events.is_empty());
    }
}

#[test]
fn an_unterminated_last_event_still_counts() {
    // The end marker without its blank line: the stream ended right after it.
    for (p, wire) in PAIRS {
        let s = &scenarios()[0];
        let Some((body, end)) = stream_of(wire, s) else { continue };
        let src = body + end.trim_end();
        let d = decode(p, &src);
        assert_eq!(d.result, Ok(()), "{p:?}/{wire:?}");
        assert_eq!(d.completion().text, s.text.concat());
    }
}

#[test]
fn stream_error_messages_say_what_happened() {
    assert!(StreamError::Truncated.message(None).contains("ended before the answer was complete"));
    assert!(StreamError::Malformed("an event that is not JSON").message(None).contains("malformed: an event that is not JSON"));
    assert!(StreamError::Upstream("{}".into()).message(Some("boom")).ends_with("mid-stream: boom"));
}

// ---- where calls go

#[test]
fn endpoints_per_provider() {
    assert_eq!(Provider::Openai.endpoint(Some("https://x.test/v1")).unwrap(), "https://x.test/v1/chat/completions");
    assert_eq!(Provider::Openai.endpoint(Some("https://x.test/v1/chat/completions")).unwrap(), "https://x.test/v1/chat/completions");
    assert!(Provider::Openai.endpoint(None).unwrap_err().contains("`endpoint` is required"));
    assert_eq!(Provider::Anthropic.endpoint(None).unwrap(), "https://api.anthropic.com/v1/messages");
    assert_eq!(Provider::Anthropic.endpoint(Some("https://proxy.test/v1")).unwrap(), "https://proxy.test/v1/messages");
    assert_eq!(Provider::Anthropic.endpoint(Some("https://proxy.test/v1/messages")).unwrap(), "https://proxy.test/v1/messages");
    assert_eq!(Provider::WorkersAi.endpoint(Some("https://ignored.test")).unwrap(), "");
    assert_eq!(Provider::WorkersAi.endpoint(None).unwrap(), "");
}

#[test]
fn auth_headers_per_provider() {
    assert_eq!(Provider::Openai.headers(Some("k-1")), vec![("authorization", "Bearer k-1".to_owned())]);
    assert!(Provider::Openai.headers(None).is_empty());
    assert_eq!(Provider::Anthropic.headers(Some("k-2")), vec![("anthropic-version", "2023-06-01".to_owned()), ("x-api-key", "k-2".to_owned())]);
    assert_eq!(Provider::Anthropic.headers(None), vec![("anthropic-version", "2023-06-01".to_owned())]);
}

#[test]
fn provider_names_in_the_config() {
    for (name, p) in [("openai", Provider::Openai), ("anthropic", Provider::Anthropic), ("workers-ai", Provider::WorkersAi)] {
        assert_eq!(spec_of(json!({"provider": name, "endpoint": "https://x.test", "model": "m"})).provider, p, "{name}");
    }
    assert_eq!(spec_of(json!({"endpoint": "https://x.test", "model": "m"})).provider, Provider::Openai);
    let cfg = json!({"ensembles": {"e": {"summary": {"provider": "workers_ai", "model": "m"}}}});
    assert!(parse_config(&cfg.to_string(), ConfigOptions::default()).is_err());
    assert_eq!(Provider::default(), Provider::Openai);
}

#[test]
fn call_prefers_the_client_settings_over_the_configured_ones() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "temperature": 0.2, "max_tokens": 99}));
    let r = req(json!({"messages": user("x")}));
    let call = |r: &Request| {
        let c = Call { model: &m, conversation: Conversation::new(&r.messages), params: &r.params, stream: false, with_tools: false };
        (c.temperature(), c.max_tokens())
    };
    assert_eq!(call(&r), (Some(0.2), Some(99)));
    let r2 = req(json!({"messages": user("x"), "temperature": 0.9, "max_tokens": 5, "max_completion_tokens": 7}));
    assert_eq!(call(&r2), (Some(0.9), Some(7)), "max_completion_tokens is the newer name and wins");
}

// ---- OpenAI: bodies

#[test]
fn openai_body_keeps_client_fields_and_owns_ours() {
    let r = req(json!({
        "model": "council", "stream": true, "stream_options": {"include_usage": true}, "n": 1, "n1": {"progress": true},
        "messages": user("x"),
        "max_tokens": 7, "seed": 3, "top_p": 0.5, "x_vendor": {"a": 1}, "logit_bias": {"5": 1}, "presence_penalty": 0.5,
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"
    }));
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "gpt-x", "temperature": 0.3}));
    let panel = body(Provider::Openai, &m, &r, false, false);
    assert_eq!(panel["model"], "gpt-x");
    assert_eq!(panel["stream"], false);
    assert!(panel.get("stream_options").is_none());
    assert_eq!(panel["max_tokens"], 7);
    assert_eq!(panel["seed"], 3);
    assert_eq!(panel["top_p"], 0.5);
    assert_eq!(panel["x_vendor"]["a"], 1);
    assert_eq!(panel["logit_bias"]["5"], 1);
    assert_eq!(panel["presence_penalty"], 0.5);
    assert_eq!(panel["temperature"], 0.3);
    assert_eq!(panel["messages"], json!([{"role": "user", "content": "x"}]));
    for k in ["tools", "tool_choice", "n", "n1"] {
        assert!(panel.get(k).is_none(), "{k}: {panel}");
    }
    let summary = body(Provider::Openai, &m, &r, true, true);
    assert_eq!(summary["stream"], true);
    assert_eq!(summary["stream_options"], json!({"include_usage": true}));
    assert_eq!(summary["tool_choice"], "auto");
    assert_eq!(summary["tools"], json!([{"type": "function", "function": {"name": "f"}}]));
    assert!(summary.get("n1").is_none() && summary.get("n").is_none());
}

#[test]
fn openai_streams_always_ask_for_usage() {
    let m = spec(Provider::Openai);
    let r = req(json!({"messages": user("x"), "stream": true, "stream_options": {"include_usage": false}}));
    let (text, v) = body_text(Provider::Openai, &m, &r, None, true, true);
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
    assert_eq!(text.matches("stream_options").count(), 1, "{text}");
}

#[test]
fn configured_max_tokens_and_extra_body() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "max_tokens": 99, "extra_body": {"top_k": 5, "seed": 1, "model": "nope"}}));
    let (text, v) = body_text(Provider::Openai, &m, &req(json!({"seed": 7, "messages": user("x")})), None, false, false);
    assert_eq!(v["max_tokens"], 99);
    assert_eq!(v["top_k"], 5);
    assert_eq!(v["seed"], 1, "extra_body wins");
    assert_eq!(text.matches("\"seed\"").count(), 1, "{text}");
    assert_eq!(v["model"], "m", "extra_body cannot change what we own");
    assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
    let v = body(Provider::Openai, &m, &req(json!({"max_completion_tokens": 5, "messages": user("x")})), false, false);
    assert!(v.get("max_tokens").is_none(), "{v}");
    assert_eq!(v["max_completion_tokens"], 5);
}

#[test]
fn client_nulls_mean_unset() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "max_tokens": 99, "temperature": 0.2}));
    let r = req(json!({"max_tokens": null, "temperature": null, "stop": null, "seed": null, "user": null, "messages": user("x")}));
    let (text, v) = body_text(Provider::Openai, &m, &r, None, false, false);
    assert_eq!(text.matches("\"max_tokens\"").count(), 1, "{text}");
    assert_eq!(text.matches("\"temperature\"").count(), 1, "{text}");
    assert_eq!(v["max_tokens"], 99);
    assert_eq!(v["temperature"], 0.2);
    for k in ["stop", "seed", "user", "max_completion_tokens"] {
        assert!(v.get(k).is_none(), "{k}: {text}");
    }
    assert!(!text.contains("null"), "no null reaches the upstream: {text}");
}

#[test]
fn client_temperature_wins_over_configured() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "temperature": 0.2}));
    let r = req(json!({"temperature": 1.1, "messages": user("x")}));
    let (text, v) = body_text(Provider::Openai, &m, &r, Some("S"), false, true);
    assert_eq!(v["temperature"], 1.1);
    assert_eq!(v["messages"][0], json!({"role": "system", "content": "S"}));
    assert_eq!(v["messages"][1]["content"], "x");
    assert_eq!(text.matches("\"temperature\"").count(), 1, "{text}");
    // Neither set: no temperature at all.
    let v = body(Provider::Openai, &spec(Provider::Openai), &req(json!({"messages": user("x")})), false, false);
    assert!(v.get("temperature").is_none() && v.get("max_tokens").is_none(), "{v}");
}

#[test]
fn extra_body_wins_but_never_over_what_n1_owns() {
    let m = spec_of(json!({"endpoint": "https://x.test", "model": "m", "temperature": 0.2, "extra_body": {
        "model": "nope", "messages": [], "stream": true, "stream_options": {"include_usage": false}, "n": 3, "n1": {"x": 1},
        "temperature": 0.9, "x_vendor": 2, "tools": [{"type": "code_interpreter"}], "reasoning_effort": "high"
    }}));
    let r = req(json!({"messages": user("x"), "temperature": 0.5, "x_vendor": 1, "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "f"}}]}));
    for (stream, with_tools) in [(false, false), (true, true)] {
        let (text, v) = body_text(Provider::Openai, &m, &r, None, stream, with_tools);
        assert_eq!(v["model"], "m");
        assert_eq!(v["messages"], json!([{"role": "user", "content": "x"}]));
        assert_eq!(v["stream"], stream);
        assert!(v.get("n").is_none() && v.get("n1").is_none(), "{text}");
        if stream {
            assert_eq!(v["stream_options"], json!({"include_usage": true}));
        } else {
            assert!(v.get("stream_options").is_none(), "{text}");
        }
        assert_eq!(v["temperature"], 0.9, "over the client's and the configured one");
        assert_eq!(v["x_vendor"], 2, "over the client's unknown field");
        assert_eq!(v["reasoning_effort"], "high");
        assert_eq!(v["tools"], json!([{"type": "code_interpreter"}]));
        // Every key once.
        let keys: Vec<&str> = ["\"model\"", "\"messages\"", "\"stream\"", "\"temperature\"", "\"x_vendor\"", "\"reasoning_effort\"", "\"tools\""].to_vec();
        for k in keys {
            assert_eq!(text.matches(k).count(), 1, "{k}: {text}");
        }
    }
}

#[test]
fn tools_only_with_tools() {
    let r = req(json!({
        "messages": user("x"),
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {}}, "strict": true}},
            {"type": "web_search", "search_context_size": "low"}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": false,
        "functions": [{"name": "legacy"}], "function_call": "auto"
    }));
    let m = spec(Provider::Openai);
    let without = body(Provider::Openai, &m, &r, false, false);
    for k in ["tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"] {
        assert!(without.get(k).is_none(), "{k}: {without}");
    }
    let with = body(Provider::Openai, &m, &r, false, true);
    assert_eq!(
        with["tools"],
        json!([
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {}}, "strict": true}},
            {"type": "web_search", "search_context_size": "low"}
        ])
    );
    assert_eq!(with["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    assert_eq!(with["parallel_tool_calls"], false);
    assert_eq!(with["functions"], json!([{"name": "legacy"}]));
    assert_eq!(with["function_call"], "auto");
    for (choice, want) in [(json!("none"), json!("none")), (json!("required"), json!("required")), (json!({"type": "allowed_tools", "x": 1}), json!({"type": "allowed_tools", "x": 1}))] {
        let r = req(json!({"messages": user("x"), "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}));
        assert_eq!(body(Provider::Openai, &m, &r, false, true)["tool_choice"], want);
    }
}

#[test]
fn openai_messages_keep_their_fields_and_parts() {
    let messages = json!([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
        ], "cache_control": {"type": "ephemeral"}},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    ]);
    let r = req(json!({"messages": messages}));
    let v = body(Provider::Openai, &spec(Provider::Openai), &r, false, true);
    assert_eq!(v["messages"], messages);
}

#[test]
fn a_system_message_of_ours_goes_first() {
    let r = req(json!({"messages": [{"role": "system", "content": "client's"}, {"role": "user", "content": "x"}]}));
    let (_, v) = body_text(Provider::Openai, &spec(Provider::Openai), &r, Some("ours"), false, false);
    let roles: Vec<(&str, &str)> = v["messages"].as_array().unwrap().iter().map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
    assert_eq!(roles, [("system", "ours"), ("system", "client's"), ("user", "x")]);
}

// ---- OpenAI: replies and streams

#[test]
fn parses_a_completion() {
    let c = Provider::Openai
        .parse_reply(r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#)
        .unwrap();
    assert_eq!(c.text, "hi");
    assert_eq!(c.finish, Finish::Stop);
    assert_eq!(c.usage.unwrap().total_tokens, 3);
}

#[test]
fn malformed_completions_are_errors() {
    let p = Provider::Openai;
    assert!(p.parse_reply("{\"choices\": [").unwrap_err().contains("malformed"));
    assert!(p.parse_reply("{\"choices\": []}").unwrap_err().contains("no choices"));
    assert!(p.parse_reply("{}").unwrap_err().contains("no choices"));
    assert!(p.parse_reply("{\"choices\": [{}]}").unwrap_err().contains("without a message"));
    assert!(p.parse_reply("[]").is_err());
    assert!(p.parse_reply("").is_err());
}

#[test]
fn odd_but_valid_completions() {
    let p = Provider::Openai;
    // Content parts, joined.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"image"},{"type":"text","text":"b"}]}}]}"#).unwrap();
    assert_eq!(c.text, "a\nb");
    // A refusal stands for the content; no finish_reason means stop.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":null,"refusal":"I can't"}}]}"#).unwrap();
    assert_eq!((c.text.as_str(), &c.finish), ("I can't", &Finish::Stop));
    // Reasoning under either name, kept under its name.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":"x","reasoning":"because"}}]}"#).unwrap();
    assert_eq!(c.reasoning, Some((ReasoningField::Reasoning, "because".into())));
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":"x","reasoning_content":"rc","reasoning":"r"}}]}"#).unwrap();
    assert_eq!(c.reasoning, Some((ReasoningField::ReasoningContent, "rc".into())));
    // Tool call arguments as an object, or missing; legacy finish reason.
    let c = p
        .parse_reply(r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":{"x":1}}},{"id":"b","function":{"name":"g"}},{"function":{}}]},"finish_reason":"function_call"}]}"#)
        .unwrap();
    assert_eq!(c.tool_calls, vec![ToolCall::function("a", "f", "{\"x\":1}"), ToolCall::function("b", "g", "{}")]);
    assert_eq!(c.finish, Finish::ToolCalls);
    assert_eq!(c.text, "");
    // Unknown finish reasons are kept; odd usage is none.
    let c = p.parse_reply(r#"{"choices":[{"message":{"content":"x"},"finish_reason":"eos"}],"usage":{"prompt_tokens":"many"}}"#).unwrap();
    assert_eq!(c.finish, Finish::Other("eos".into()));
    assert_eq!(c.usage, None);
}

#[test]
fn finish_without_done_is_complete() {
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.text(), "a");
}

#[test]
fn done_without_finish_is_complete() {
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n");
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.text(), "a");
    assert!(d.finishes().is_empty(), "no finish of its own: the encoder says stop");
}

#[test]
fn nothing_after_done_counts() {
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: ###\n\n");
    assert_eq!(d.result, Ok(()));
    assert_eq!(d.text(), "a");
}

#[test]
fn a_null_error_member_is_no_error() {
    let src = "data: {\"error\":null,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n\
               data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"error\":null}\n\ndata: [DONE]\n\n";
    for p in [Provider::Openai, Provider::WorkersAi] {
        let d = decode(p, src);
        assert_eq!(d.result, Ok(()), "{p:?}");
        assert_eq!(d.text(), "a", "{p:?}");
    }
    // Any other value is an error, even late in a chunk with content (which is not relayed).
    let d = decode(Provider::Openai, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"error\":\"late\"}\n\n");
    assert_eq!(d.result, Err(StreamError::Upstream("{\"error\":\"late\"}".into())));
    assert!(d.events.is_empty());
}

#[test]
fn tool_call_deltas_pass_through() {
    let d = decode(
        Provider::Openai,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}\n\n\
         data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    );
    assert_eq!(d.result, Ok(()));
    assert_eq!(
        d.events[..3],
        [
            Event::ToolCall { index: 0, id: Some("call_1".into()), name: Some("f".into()), arguments: "".into() },
            Event::ToolCall { index: 1, id: Some("call_2".into()), name: Some("g".into()), arguments: "{}".into() },
            Event::ToolCall { index: 0, id: None, name: None, arguments: "{\"a\":1}".into() },
        ]
    );
    let c = d.completion();
    assert_eq!(c.tool_calls, vec![ToolCall::function("call_1", "f", "{\"a\":1}"), ToolCall::function("call_2", "g", "{}")]);
    assert_eq!(c.finish, Finish::ToolCalls);
}

#[test]
fn reasoning_keeps_its_field_name() {
    let d = decode(
        Provider::Openai,
        "data: {\"choices\":[{\"delta\":{\"reasoning\":\"r1\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"reasoning_content\":\"r2\",\"content\":\"\"}}]}\n\ndata: [DONE]\n\n",
    );
    assert_eq!(d.events, [Event::Reasoning(ReasoningField::Reasoning, "r1".into()), Event::Reasoning(ReasoningField::ReasoningContent, "r2".into())]);
}

/// The events the relay decided on before (its corpus), and what each decodes
/// to now: `Ok(events)` or the kind of error. Chunks are read as JSON values
/// (as the `Value`-based relay read them): a duplicate key's last value
/// counts, shapes that are not OpenAI's (a string delta, a numeric finish
/// reason, choices that are not an array of objects) are skipped, not errors.
/// What changed since that relay: one answer is the first choice's (it
/// forwarded every choice), a refusal is answer text, and empty content is
/// no event.
fn corpus() -> Vec<(&'static str, Result<Vec<Event<'static>>, &'static str>)> {
    let text = |t: &str| Event::Text(Cow::Owned(t.to_owned()));
    vec![
        (r#"{"id":"up","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#, Ok(vec![])),
        (r#"{"id":"up","model":"m","created":1,"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#, Ok(vec![text("Hel")])),
        (r#"{"choices":[{"index":0,"delta":{"content":"lo \"quoted\" \\ \n\t é 世界 🎉 \u00e9 \ud83c\udf89 \/"},"finish_reason":null}]}"#, Ok(vec![text("lo \"quoted\" \\ \n\t é 世界 🎉 é 🎉 /")])),
        (r#"  { "choices" : [ { "index" : 0 , "delta" : { "content" : "spaced" } , "finish_reason" : null } ] , "x" : [ 1 , { "a" : "}" } ] }  "#, Ok(vec![text("spaced")])),
        (r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#, Ok(vec![Event::Finish(Finish::Stop)])),
        (r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#, Ok(vec![Event::Usage(usage(3, 4)), Event::Finish(Finish::Length)])),
        (r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#, Ok(vec![Event::Usage(usage(7, 3))])),
        (r#"{"choices":[],"usage":null}"#, Ok(vec![])),
        (r#"{"usage":{"prompt_tokens":"x"}}"#, Ok(vec![])),
        (
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]}}]}"#,
            Ok(vec![Event::ToolCall { index: 0, id: Some("call_1".into()), name: Some("f".into()), arguments: "{\"a\":[1,2]}".into() }]),
        ),
        (r#"{"choices":[{"index":0,"delta":{"refusal":null,"content":null,"role":"assistant"}}]}"#, Ok(vec![])),
        (r#"{"choices":[{"index":0,"delta":{"refusal":"no"}}]}"#, Ok(vec![text("no")])),
        (r#"{"choices":[{"index":0,"delta":{"content":"a","content":""}}]}"#, Ok(vec![])),
        (r#"{"choices":[{"index":0,"delta":{"content":"","content":"b"}}]}"#, Ok(vec![text("b")])),
        (r#"{"choices":[{"index":0,"delta":{"x":1,"x":null}}]}"#, Ok(vec![])),
        (r#"{"choices":[{"index":0,"delta":"text"}]}"#, Ok(vec![])),
        (r#"{"choices":[{"index":0,"delta":{"content":"c"},"finish_reason":7}]}"#, Ok(vec![text("c")])),
        (r#"{"choices":[{"index":0,"delta":{},"finish_reason":7}]}"#, Ok(vec![])),
        (r#"{"choices":[{"index":0,"finish_reason":"stop","finish_reason":null,"delta":{}}]}"#, Ok(vec![])),
        (r#"{"choices":[1,"s",null,[1],{"delta":{"content":"d"}}]}"#, Ok(vec![])),
        // One answer: the first choice.
        (r#"{"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{},"finish_reason":"stop"}]}"#, Ok(vec![text("x")])),
        (r#"{"choices":{"0":{"delta":{"content":"x"}}}}"#, Ok(vec![])),
        (r#"{"choices":"nope"}"#, Ok(vec![])),
        (r#"{"choices":[{"delta":{"content":"dup"}}],"choices":[]}"#, Ok(vec![])),
        (r#"{"choices":[],"choices":[{"delta":{"content":"dup2"}}],"id":"a","id":"b","zz":1,"zz":2}"#, Ok(vec![text("dup2")])),
        (r#"{"\u0069d":"escaped-key","ch\u006fices":[{"delta":{"content":"esc"}}],"n1":{"x":1}}"#, Ok(vec![text("esc")])),
        (r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"n1":"upstream's","extra":{"deep":[[[{"k":"v"}]]]}}"#, Ok(vec![Event::Finish(Finish::Stop)])),
        (r#"{"choices":[{"delta":{"content":"num"}}],"n":[1.0,-0,1e2,1E-7,12345678901234567890,0.1000,-3.5e+3]}"#, Ok(vec![text("num")])),
        (r#"{"choices":[{"delta":{"content":"lone"}}],"s":"\ud800"}"#, Err("malformed")),
        (r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{}"}}],"content":"t"}}]}"#, Ok(vec![text("t"), Event::ToolCall { index: 0, id: None, name: None, arguments: "{}".into() }])),
        (r#"{"error":{"message":"boom","type":"server_error"}}"#, Err("upstream")),
        (r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#, Ok(vec![text("x")])),
        (r#"{"choices":[{"delta":{"content":"x"}}],"error":"late"}"#, Err("upstream")),
        ("[1,2]", Err("malformed")),
        ("\"str\"", Err("malformed")),
        ("42", Err("malformed")),
        ("null", Err("malformed")),
        ("{not json", Err("malformed")),
        ("{\"a\":1} trailing", Err("malformed")),
        ("{\"a\":1,}", Err("malformed")),
        ("", Err("malformed")),
        ("{}", Ok(vec![])),
    ]
}

fn kind(e: &StreamError) -> &'static str {
    match e {
        StreamError::Malformed(_) => "malformed",
        StreamError::Upstream(_) => "upstream",
        StreamError::Truncated => "truncated",
    }
}

#[test]
fn each_corpus_event_decodes_as_specified() {
    for (data, want) in corpus() {
        let mut d = Provider::Openai.decoder();
        let mut events = Vec::new();
        let got = d.push(format!("data: {data}\n\n").as_bytes(), &mut |e| events.push(owned(e)));
        match (&want, got) {
            (Ok(w), Ok(())) => assert_eq!(&events, w, "{data}"),
            (Err(k), Err(e)) => {
                assert_eq!(*k, kind(&e), "{data}: {e:?}");
                assert!(events.is_empty(), "{data}: nothing of an event in error is relayed");
            }
            (w, g) => panic!("{data}: want {w:?}, got {g:?} with {events:?}"),
        }
    }
}

/// Every sequence of up to 3 corpus events, and long random ones (the relay's
/// old differential test, against the table): the events are each event's in
/// order, up to the first error; nothing counts after `[DONE]`; the stream is
/// complete once a finish reason or `[DONE]` came.
#[test]
fn corpus_sequences_decode_event_by_event() {
    let corpus = corpus();
    let all: Vec<usize> = (0..corpus.len()).collect();
    let mut seqs: Vec<Vec<Option<usize>>> = Vec::new(); // None: [DONE]
    let with_done: Vec<Option<usize>> = all.iter().map(|&i| Some(i)).chain([None]).collect();
    for &a in &with_done {
        seqs.push(vec![a]);
        for &b in &with_done {
            seqs.push(vec![a, b]);
            for &c in with_done.iter().step_by(5) {
                seqs.push(vec![a, b, c]);
            }
        }
    }
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..2000 {
        let n = 1 + (x % 12) as usize;
        let mut s = Vec::new();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % (corpus.len() as u64 + 1)) as usize;
            s.push((i < corpus.len()).then_some(i));
        }
        seqs.push(s);
    }
    for seq in &seqs {
        let src: String = seq.iter().map(|i| format!("data: {}\n\n", i.map_or("[DONE]", |i| corpus[i].0))).collect();
        let mut want_events = Vec::new();
        let mut want_err = None;
        let mut complete = false;
        for i in seq {
            let Some(i) = i else {
                complete = true;
                break;
            };
            match &corpus[*i].1 {
                Ok(evs) => {
                    complete |= evs.iter().any(|e| matches!(e, Event::Finish(_)));
                    want_events.extend(evs.iter().cloned());
                }
                Err(k) => {
                    want_err = Some(*k);
                    break;
                }
            }
        }
        for reads in [vec![src.as_bytes()], src.as_bytes().chunks(7).collect::<Vec<_>>()] {
            let d = decode_reads(Provider::Openai, &reads);
            assert_eq!(d.events, want_events, "{seq:?}");
            match (want_err, &d.result) {
                (Some(k), Err(e)) => assert_eq!(k, kind(e), "{seq:?}"),
                (None, Ok(())) => assert!(complete, "{seq:?}"),
                (None, Err(StreamError::Truncated)) => assert!(!complete, "{seq:?}"),
                (w, g) => panic!("{seq:?}: want {w:?}, got {g:?}"),
            }
        }
    }
}

// ---- Anthropic: bodies

fn anthropic_body(r: &Request, system: Option<&str>, stream: bool, with_tools: bool) -> Value {
    body_text(Provider::Anthropic, &spec(Provider::Anthropic), r, system, stream, with_tools).1
}

#[test]
fn anthropic_system_messages_become_the_system_field() {
    let r = req(json!({"messages": [
        {"role": "system", "content": "A"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "B1"}, {"type": "text", "text": "B2"}]}
    ]}));
    let v = anthropic_body(&r, Some("SYNTH"), false, false);
    assert_eq!(v["system"], "SYNTH\n\nA\n\nB1\nB2");
    assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(v["model"], "claude-x");
    let v = anthropic_body(&req(json!({"messages": user("hi")})), None, false, false);
    assert!(v.get("system").is_none(), "{v}");
    assert!(v.get("stream").is_none(), "stream only when streaming: {v}");
    assert_eq!(anthropic_body(&req(json!({"messages": user("hi")})), None, true, false)["stream"], true);
}

#[test]
fn anthropic_tool_use_and_tool_result() {
    let r = req(json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "broken", "arguments": "{not json"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "12 C"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "err"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "f"}}]}
    ]}));
    let v = anthropic_body(&r, None, false, true);
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "c2", "name": "broken", "input": {}}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "12 C"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c2", "content": "err"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c3", "name": "f", "input": {}}]}
        ])
    );
}

#[test]
fn anthropic_images() {
    let r = req(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%20x%3D%221%22%2F%3E"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;name=a.jpg;BASE64,/9j/4AA"}},
        {"type": "image_url", "image_url": {"url": "data:,hi"}},
        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
    ]}]}));
    let v = anthropic_body(&r, None, false, false);
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"type": "text", "text": "compare"},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2ZyB4PSIxIi8+"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AA"}},
            {"type": "image", "source": {"type": "base64", "media_type": "text/plain", "data": "aGk="}}
        ])
    );
}

#[test]
fn anthropic_temperature_is_capped_at_1() {
    for (configured, client, want) in [(None, None, None), (None, Some(0.4), Some(0.4)), (None, Some(1.5), Some(1.0)), (Some(1.8), None, Some(1.0)), (Some(0.3), Some(2.0), Some(1.0)), (Some(0.3), None, Some(0.3))] {
        let m = spec_of(json!({"provider": "anthropic", "model": "c", "temperature": configured}));
        let mut b = json!({"messages": user("x")});
        if let Some(t) = client {
            b["temperature"] = json!(t);
        }
        let v = body(Provider::Anthropic, &m, &req(b), false, false);
        assert_eq!(v.get("temperature").and_then(Value::as_f64), want, "{configured:?} {client:?}");
    }
}

#[test]
fn anthropic_max_tokens_default_configured_and_client() {
    let plain = spec(Provider::Anthropic);
    let configured = spec_of(json!({"provider": "anthropic", "model": "c", "max_tokens": 1000}));
    let x = req(json!({"messages": user("x")}));
    assert_eq!(body(Provider::Anthropic, &plain, &x, false, false)["max_tokens"], 4096);
    assert_eq!(body(Provider::Anthropic, &configured, &x, false, false)["max_tokens"], 1000);
    let client = req(json!({"messages": user("x"), "max_tokens": 50}));
    assert_eq!(body(Provider::Anthropic, &configured, &client, false, false)["max_tokens"], 50);
    let client = req(json!({"messages": user("x"), "max_completion_tokens": 60}));
    assert_eq!(body(Provider::Anthropic, &plain, &client, false, false)["max_tokens"], 60);
}

#[test]
fn anthropic_extra_body_wins() {
    let m = spec_of(json!({"provider": "anthropic", "model": "c", "max_tokens": 1000,
        "extra_body": {"max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": 2048}, "temperature": 1, "top_k": 5}}));
    let r = req(json!({"messages": user("x"), "temperature": 0.2, "max_tokens": 10}));
    let (text, v) = body_text(Provider::Anthropic, &m, &r, None, true, false);
    assert_eq!(v["max_tokens"], 64000);
    assert_eq!(v["thinking"]["budget_tokens"], 2048);
    assert_eq!(v["temperature"], 1);
    assert_eq!(v["top_k"], 5);
    assert_eq!(v["stream"], true);
    assert_eq!(text.matches("\"max_tokens\"").count(), 1, "{text}");
}

#[test]
fn anthropic_parameters_tools_and_choices() {
    let r = req(json!({
        "messages": user("x"), "top_p": 0.9, "stop": ["END", "STOP"], "user": "u-1", "seed": 4, "x_vendor": 1, "response_format": {"type": "json_object"},
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "g"}},
            {"type": "web_search"}
        ],
        "tool_choice": "required"
    }));
    let v = anthropic_body(&r, None, false, true);
    assert_eq!(v["top_p"], 0.9);
    assert_eq!(v["stop_sequences"], json!(["END", "STOP"]));
    assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
    for k in ["seed", "x_vendor", "response_format", "stop", "user"] {
        assert!(v.get(k).is_none(), "{k} is not Anthropic's: {v}");
    }
    assert_eq!(
        v["tools"],
        json!([
            {"name": "f", "description": "does f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
            {"name": "g", "description": "", "input_schema": {"type": "object"}}
        ])
    );
    assert_eq!(v["tool_choice"], json!({"type": "any"}));
    let without = anthropic_body(&r, None, false, false);
    assert!(without.get("tools").is_none() && without.get("tool_choice").is_none(), "{without}");
    for (choice, want) in [
        (json!("auto"), Some(json!({"type": "auto"}))),
        (json!("none"), Some(json!({"type": "none"}))),
        (json!({"type": "function", "function": {"name": "f"}}), Some(json!({"type": "tool", "name": "f"}))),
        (json!({"type": "allowed_tools"}), None),
    ] {
        let r = req(json!({"messages": user("x"), "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}));
        assert_eq!(anthropic_body(&r, None, false, true).get("tool_choice").cloned(), want);
    }
    // No stop, no user, no tools: none of their fields.
    let v = anthropic_body(&req(json!({"messages": user("x")})), None, false, true);
    for k in ["stop_sequences", "metadata", "tools", "tool_choice", "top_p", "temperature"] {
        assert!(v.get(k).is_none(), "{k}: {v}");
    }
}

// ---- Anthropic: replies and streams

#[test]
fn anthropic_replies() {
    let p = Provider::Anthropic;
    let c = p
        .parse_reply(r#"{"content":[{"type":"text","text":"a"},{"type":"server_tool_use","id":"x"},{"type":"text","text":"b"}],"stop_reason":"stop_sequence","usage":{"input_tokens":4,"output_tokens":2}}"#)
        .unwrap();
    assert_eq!((c.text.as_str(), &c.finish, c.usage), ("ab", &Finish::Stop, Some(usage(4, 2))));
    let c = p.parse_reply(r#"{"content":[{"type":"tool_use","id":"t","name":"f"}],"stop_reason":"refusal"}"#).unwrap();
    assert_eq!(c.tool_calls, vec![ToolCall::function("t", "f", "{}")]);
    assert_eq!((c.finish, c.usage), (Finish::ContentFilter, None));
    assert!(p.parse_reply("{\"content\": ").unwrap_err().contains("malformed"));
    assert!(p.parse_reply("{\"type\": \"error\"}").is_err());
}

#[test]
fn anthropic_stop_reasons() {
    for (stop, want) in [("end_turn", Finish::Stop), ("stop_sequence", Finish::Stop), ("max_tokens", Finish::Length), ("tool_use", Finish::ToolCalls), ("refusal", Finish::ContentFilter), ("pause_turn", Finish::Stop)] {
        let src = format!("data: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\"}},\"usage\":{{\"output_tokens\":1}}}}\n\n");
        assert_eq!(decode(Provider::Anthropic, &src).finishes(), [want], "{stop}");
    }
}

#[test]
fn anthropic_message_stop_alone_completes_and_ping_is_nothing() {
    let d = decode(Provider::Anthropic, "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    assert_eq!(d.result, Ok(()));
    assert!(d.events.is_empty());
}

#[test]
fn anthropic_tool_blocks_map_to_tool_call_indices() {
    let ev = |v: Value| format!("data: {v}\n\n");
    let src = [
        ev(json!({"type": "message_start", "message": {"usage": {"input_tokens": 9}}})),
        ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Two calls."}})),
        // Not a tool block: its JSON deltas are no tool call's.
        ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"stray\":1}"}})),
        ev(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}})),
        ev(json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t2", "name": "g", "input": {}}})),
        ev(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"b\":"}})),
        ev(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}})),
        ev(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "2}"}})),
        ev(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}})),
    ]
    .concat();
    let d = decode(Provider::Anthropic, &src);
    assert_eq!(d.result, Ok(()));
    let c = d.completion();
    assert_eq!(c.text, "Two calls.");
    assert_eq!(c.tool_calls, vec![ToolCall::function("t1", "f", "{\"a\":1}"), ToolCall::function("t2", "g", "{\"b\":2}")]);
    assert_eq!((c.finish, c.usage), (Finish::ToolCalls, Some(usage(9, 30))));
}

#[test]
fn anthropic_usage_in_message_delta_wins_over_message_start() {
    let src = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9}}}\n\n\
               data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}\n\n";
    assert_eq!(decode(Provider::Anthropic, src).completion().usage, Some(usage(12, 3)));
}

#[test]
fn cached_prompt_tokens_are_read_from_openai_and_anthropic() {
    let cached = |p, c, k| Usage { cached_tokens: k, ..usage(p, c) };
    let c = Provider::Openai
        .parse_reply(r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":100,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":64}}}"#)
        .unwrap();
    assert_eq!(c.usage, Some(cached(100, 2, 64)));
    // Anthropic's input_tokens leaves out cache reads and writes: the prompt counts them all.
    let c = Provider::Anthropic
        .parse_reply(r#"{"content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":80,"cache_creation_input_tokens":5,"output_tokens":2}}"#)
        .unwrap();
    assert_eq!(c.usage, Some(cached(95, 2, 80)));
    let src = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":80,\"output_tokens\":1}}}\n\n\
               data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n";
    assert_eq!(decode(Provider::Anthropic, src).completion().usage, Some(cached(90, 3, 80)));
    let src = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":40}}}\n\ndata: [DONE]\n\n";
    assert_eq!(decode(Provider::Openai, src).completion().usage, Some(cached(50, 1, 40)));
}
