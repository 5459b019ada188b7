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
use crate::core::request::{PromptCache, Request, ToolCall};
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
    Usage { prompt_tokens: p, completion_tokens: c, total_tokens: p + c, cached_tokens: 0, ..Usage::default() }
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


// ---- where calls go

// ---- OpenAI: bodies

// ---- OpenAI: replies and streams

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
        (r#"{"choices":[{"delta":{"content":"lone \ud800"}}]}"#, Err("malformed")),
        (r#"{"choices":[{"delta":{"content":"a"},"delta":{"reasoning":"r"}}]}"#, Ok(vec![Event::Reasoning(ReasoningField::Reasoning, "r".into())])),
        (r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":null}"#, Ok(vec![text("a")])),
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

// ---- Anthropic: bodies

fn anthropic_body(r: &Request, system: Option<&str>, stream: bool, with_tools: bool) -> Value {
    body_text(Provider::Anthropic, &spec(Provider::Anthropic), r, system, stream, with_tools).1
}

// ---- Anthropic: replies and streams

mod replies;
mod streams;
mod bodies;
