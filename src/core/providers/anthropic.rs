//! Anthropic's Messages API as a provider: the internal request as a Messages
//! body, and its replies and stream events decoded into the internal types.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::Call;
use crate::core::events::{Completion, Emit, Event, Finish, ReasoningField, StreamError};
use crate::core::json;
use crate::core::request::{Content, Message, Part, PromptCache, Role, Tool, ToolCall, ToolChoice};
use crate::core::usage::Usage;

pub const ENDPOINT: &str = "https://api.anthropic.com/v1/messages";
pub const VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when neither client nor config set one.
const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u64,
    messages: Vec<AMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ATool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<AToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    /// Anthropic's automatic prompt caching: one mark at the end of the prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "ephemeral")]
struct CacheControl {
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'static str>,
}

#[derive(Serialize)]
struct AMessage<'a> {
    role: &'static str,
    content: AContent<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AContent<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: Cow<'a, str> },
    Image { source: Source<'a> },
    ToolUse { id: &'a str, name: &'a str, input: Value },
    ToolResult { tool_use_id: &'a str, content: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Base64 { media_type: &'a str, data: Cow<'a, str> },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct ATool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: Cow<'a, Value>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AToolChoice<'a> {
    Auto,
    Any,
    None,
    Tool { name: &'a str },
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

pub fn body(call: &Call) -> String {
    let p = call.params;
    let mut system: Vec<Cow<str>> = call.conversation.system.map(Cow::Borrowed).into_iter().collect();
    let mut messages = Vec::with_capacity(call.conversation.messages.len());
    for m in call.conversation.messages {
        match m.role {
            Role::System | Role::Developer => system.push(m.text()),
            Role::Assistant => messages.push(AMessage { role: "assistant", content: AContent::Blocks(assistant_blocks(m)) }),
            Role::Tool | Role::Function => messages.push(AMessage {
                role: "user",
                content: AContent::Blocks(vec![Block::ToolResult { tool_use_id: m.tool_call_id.as_deref().unwrap_or(""), content: m.text() }]),
            }),
            Role::User => messages.push(AMessage { role: "user", content: user_content(m) }),
        }
    }
    let tools = if call.with_tools { p.tools.iter().filter_map(tool).collect() } else { Vec::new() };
    let tool_choice = p.tool_choice.as_ref().filter(|_| call.with_tools).and_then(|c| match c {
        ToolChoice::Auto => Some(AToolChoice::Auto),
        ToolChoice::Required => Some(AToolChoice::Any),
        ToolChoice::None => Some(AToolChoice::None),
        ToolChoice::Function(name) => Some(AToolChoice::Tool { name }),
        ToolChoice::Other(_) => None,
    });
    let body = Body {
        model: &call.model.model,
        max_tokens: call.max_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        // Anthropic's range is 0..1.
        temperature: call.temperature().map(|t| t.min(1.0)),
        top_p: p.top_p,
        top_k: p.top_k,
        stop_sequences: &p.stop,
        tools,
        tool_choice,
        metadata: p.user.as_deref().map(|user_id| Metadata { user_id }),
        // Only a prompt that begins as the client's: one that begins with N-1's
        // own system prompt (the panel's answers for the summary, an earlier
        // layer's for a later one) differs every time, and writing it to the
        // cache would cost 1.25 × input for a prefix no later request shares.
        cache_control: p.prompt_cache.filter(|_| call.conversation.system.is_none()).map(|c| CacheControl {
            ttl: (c == PromptCache::OneHour).then_some("1h"),
        }),
        stream: call.stream,
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    let extra = &call.model.extra_body;
    if extra.is_empty() {
        return text;
    }
    // The model's extra_body wins (e.g. `thinking`, `top_k`, a larger `max_tokens`).
    let mut body: Value = serde_json::from_str(&text).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    json::text(&body)
}

fn assistant_blocks(m: &Message) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let text = m.text();
    if !text.is_empty() {
        blocks.push(Block::Text { text });
    }
    for c in &m.tool_calls {
        let input = serde_json::from_str(&c.function.arguments).unwrap_or_else(|_| Value::Object(Default::default()));
        blocks.push(Block::ToolUse { id: &c.id, name: &c.function.name, input });
    }
    blocks
}

fn user_content(m: &Message) -> AContent<'_> {
    let Content::Parts(parts) = &m.content else { return AContent::Text(m.text()) };
    AContent::Blocks(
        parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(Block::Text { text: Cow::Borrowed(t) }),
                Part::Image { url, .. } => Some(Block::Image { source: image_source(url) }),
                Part::Other(_) => None,
            })
            .collect(),
    )
}

/// `data:<media>[;params][;base64],<data>` → a base64 source (Anthropic takes
/// base64 only, so percent-encoded data URLs are decoded and re-encoded);
/// anything else by URL.
fn image_source(url: &str) -> Source<'_> {
    match url.strip_prefix("data:").and_then(|rest| rest.split_once(',')) {
        Some((meta, data)) => {
            let base64 = meta.rsplit(';').next().is_some_and(|p| p.eq_ignore_ascii_case("base64"));
            let media_type = meta.split(';').next().filter(|m| !m.is_empty()).unwrap_or("text/plain");
            let data = if base64 { Cow::Borrowed(data) } else { Cow::Owned(base64_encode(&crate::core::url::percent_decode(data))) };
            Source::Base64 { media_type, data }
        }
        None => Source::Url { url },
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn tool(t: &Tool) -> Option<ATool<'_>> {
    match t {
        Tool::Function { name, description, parameters, .. } => Some(ATool {
            name,
            description: description.as_deref().unwrap_or(""),
            input_schema: parameters.as_ref().map_or_else(|| Cow::Owned(serde_json::json!({"type": "object"})), Cow::Borrowed),
        }),
        Tool::Other(_) => None,
    }
}

fn finish(stop: Option<&str>) -> Finish {
    match stop {
        Some("max_tokens") => Finish::Length,
        Some("tool_use") => Finish::ToolCalls,
        Some("refusal") => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

/// Anthropic's input counts: its `input_tokens` leaves out prompt-cache reads
/// and writes, so `prompt_tokens` adds them; `cached_tokens` are the reads,
/// `cache_write_tokens` the writes (`cache_creation` splits them by lifetime).
fn input_of(u: &Value) -> Option<Usage> {
    let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (get("cache_read_input_tokens"), get("cache_creation_input_tokens"));
    let prompt = u.get("input_tokens")?.as_u64()? + read + write;
    let write_1h = u.pointer("/cache_creation/ephemeral_1h_input_tokens").and_then(Value::as_u64).unwrap_or(0);
    Some(Usage { prompt_tokens: prompt, total_tokens: prompt, cached_tokens: read, cache_write_tokens: write, cache_write_1h_tokens: write_1h.min(write), ..Usage::default() })
}

/// Anthropic's usage object; the input of `start` (a stream's
/// `message_start`) when it has none (a `message_delta` may report only the output).
fn usage_of(u: &Value, start: Usage) -> Option<Usage> {
    let o = u.get("output_tokens")?.as_u64()?;
    let i = input_of(u).unwrap_or(start);
    Some(Usage { completion_tokens: o, total_tokens: i.prompt_tokens + o, ..i })
}

/// A Messages reply.
pub fn parse_reply(body: &str) -> Result<Completion, String> {
    let r: Value = serde_json::from_str(body).map_err(|_| "the upstream returned malformed JSON".to_owned())?;
    let blocks = r.get("content").and_then(Value::as_array).ok_or("the upstream returned no content")?;
    let str_of = |b: &Value, k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut c = Completion {
        finish: finish(r.get("stop_reason").and_then(Value::as_str)),
        usage: r.get("usage").and_then(|u| usage_of(u, Usage::default())),
        ..Completion::default()
    };
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => c.text.push_str(&str_of(b, "text")),
            Some("thinking") => c.reasoning.get_or_insert((ReasoningField::ReasoningContent, String::new())).1.push_str(&str_of(b, "thinking")),
            Some("tool_use") => {
                let input = b.get("input").map_or_else(|| "{}".to_owned(), Value::to_string);
                c.tool_calls.push(ToolCall::function(str_of(b, "id"), str_of(b, "name"), input));
            }
            _ => {}
        }
    }
    Ok(c)
}

/// Anthropic's stream: complete once `message_delta` (with the stop reason) or
/// `message_stop` came. Its events are small and few per answer; each is
/// read as a JSON value.
#[derive(Default)]
pub struct StreamState {
    /// The input counts of `message_start` (a `message_delta` may not repeat them).
    input: Usage,
    /// Anthropic content block index → tool call index.
    tools: Vec<(u64, u32)>,
    finished: bool,
    /// `message_stop` came: the last event of a message.
    stopped: bool,
}

impl StreamState {
    pub fn complete(&self) -> bool {
        self.finished
    }

    pub fn ended(&self) -> bool {
        self.stopped
    }

    pub fn event(&mut self, data: &str, emit: Emit) -> Result<(), StreamError> {
        let mut ev: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed("an event that is not JSON"))?;
        let text = |v: Option<&mut Value>| match v.map(Value::take) {
            Some(Value::String(s)) => Cow::Owned(s),
            _ => Cow::Borrowed(""),
        };
        let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
        match ev.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                self.input = ev.pointer("/message/usage").and_then(input_of).unwrap_or_default();
            }
            "content_block_start" if ev.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use") => {
                let i = self.tools.len() as u32;
                self.tools.push((index, i));
                let id = Some(text(ev.pointer_mut("/content_block/id")));
                let name = Some(text(ev.pointer_mut("/content_block/name")));
                emit(Event::ToolCall { index: i, id, name, arguments: Cow::Borrowed("") });
            }
            "content_block_delta" => match ev.pointer("/delta/type").and_then(Value::as_str).unwrap_or("") {
                "text_delta" => emit(Event::Text(text(ev.pointer_mut("/delta/text")))),
                "thinking_delta" => emit(Event::Reasoning(ReasoningField::ReasoningContent, text(ev.pointer_mut("/delta/thinking")))),
                "input_json_delta" => {
                    if let Some(&(_, i)) = self.tools.iter().find(|(b, _)| *b == index) {
                        emit(Event::ToolCall { index: i, id: None, name: None, arguments: text(ev.pointer_mut("/delta/partial_json")) });
                    }
                }
                _ => {}
            },
            "message_delta" => {
                self.finished = true;
                emit(Event::Finish(finish(ev.pointer("/delta/stop_reason").and_then(Value::as_str))));
                if let Some(u) = ev.get("usage").and_then(|u| usage_of(u, self.input)) {
                    emit(Event::Usage(u));
                }
            }
            "message_stop" => (self.finished, self.stopped) = (true, true),
            "error" => return Err(StreamError::upstream(ev.get_mut("error").map(Value::take).unwrap_or_default())),
            _ => {} // ping, content_block_stop, text and thinking block starts
        }
        Ok(())
    }
}
