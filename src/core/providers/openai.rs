//! OpenAI-compatible chat completions (OpenAI, Groq, Together, vLLM, Azure, …):
//! the request body, borrowed from the request (nothing is copied); the reply;
//! and the one stream parser every OpenAI-shaped stream goes through (Workers
//! AI's newer models reuse it).

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::Call;
use crate::core::events::{Completion, Emit, Event, Finish, ReasoningField, StreamError};
use crate::core::request::{Tool, ToolCall, ToolChoice};
use crate::core::usage::Usage;

/// Fields N-1 sets itself, or that must not reach an upstream, whoever sent them.
const OWNED: &[&str] = &["model", "messages", "stream", "stream_options", "n", "n1"];

pub fn body(call: &Call) -> String {
    serde_json::to_string(&Body(call)).expect("serializing a request cannot fail")
}

/// The chat completions body: our fields, then the client's parameters (with
/// the model's configured temperature and max_tokens where the client set
/// none), then fields the client sent that N-1 does not know, and last the
/// model's `extra_body`, which wins over everything but what N-1 owns.
struct Body<'a, 'c>(&'a Call<'c>);

impl Serialize for Body<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Call { model, conversation, params: p, stream, with_tools } = *self.0;
        let extra = &model.extra_body;
        let ours = |k: &str| !extra.contains_key(k);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("model", &model.model)?;
        map.serialize_entry("messages", &conversation)?;
        map.serialize_entry("stream", &stream)?;
        if stream {
            // Always ask for usage: the reply's usage is the sum over every call.
            map.serialize_entry("stream_options", &IncludeUsage { include_usage: true })?;
        }
        if let Some(t) = self.0.temperature().filter(|_| ours("temperature")) {
            map.serialize_entry("temperature", &t)?;
        }
        match (p.max_tokens, p.max_completion_tokens) {
            (None, None) => {
                if let Some(n) = model.max_tokens.filter(|_| ours("max_tokens")) {
                    map.serialize_entry("max_tokens", &n)?;
                }
            }
            (a, b) => {
                entry(&mut map, "max_tokens", &a, ours("max_tokens"))?;
                entry(&mut map, "max_completion_tokens", &b, ours("max_completion_tokens"))?;
            }
        }
        entry(&mut map, "top_p", &p.top_p, ours("top_p"))?;
        match p.stop.as_slice() {
            [] => {}
            stop if ours("stop") => map.serialize_entry("stop", stop)?,
            _ => {}
        }
        entry(&mut map, "seed", &p.seed, ours("seed"))?;
        entry(&mut map, "response_format", &p.response_format, ours("response_format"))?;
        entry(&mut map, "reasoning_effort", &p.reasoning_effort, ours("reasoning_effort"))?;
        entry(&mut map, "user", &p.user, ours("user"))?;
        if with_tools {
            if !p.tools.is_empty() && ours("tools") {
                map.serialize_entry("tools", &Tools(&p.tools))?;
            }
            if let Some(c) = p.tool_choice.as_ref().filter(|_| ours("tool_choice")) {
                map.serialize_entry("tool_choice", &Choice(c))?;
            }
            entry(&mut map, "parallel_tool_calls", &p.parallel_tool_calls, ours("parallel_tool_calls"))?;
        }
        for (k, v) in &p.extra {
            let summary_only = matches!(k.as_str(), "functions" | "function_call");
            if ours(k) && !OWNED.contains(&k.as_str()) && (with_tools || !summary_only) {
                map.serialize_entry(k, v)?;
            }
        }
        for (k, v) in extra {
            if !OWNED.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

fn entry<M: SerializeMap, T: Serialize>(map: &mut M, k: &str, v: &Option<T>, ours: bool) -> Result<(), M::Error> {
    match v {
        Some(v) if ours => map.serialize_entry(k, v),
        _ => Ok(()),
    }
}

#[derive(serde::Serialize)]
struct IncludeUsage {
    include_usage: bool,
}

/// `tools` in OpenAI's form.
pub struct Tools<'a>(pub &'a [Tool]);

#[derive(serde::Serialize)]
struct FunctionTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDef<'a>,
}

#[derive(serde::Serialize)]
struct FunctionDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToolJson))
    }
}

struct ToolJson<'a>(&'a Tool);

impl Serialize for ToolJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Tool::Function { name, description, parameters, strict } => FunctionTool {
                kind: "function",
                function: FunctionDef { name, description: description.as_deref(), parameters: parameters.as_ref(), strict: *strict },
            }
            .serialize(s),
            Tool::Other(v) => v.serialize(s),
        }
    }
}

/// `tool_choice` in OpenAI's form.
pub struct Choice<'a>(pub &'a ToolChoice);

impl Serialize for Choice<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Function(name) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("type", "function")?;
                map.serialize_entry("function", &Name { name })?;
                map.end()
            }
            ToolChoice::Other(v) => v.serialize(s),
        }
    }
}

#[derive(serde::Serialize)]
struct Name<'a> {
    name: &'a str,
}

// ---- replies

/// A 2xx chat completion body.
pub fn parse_reply(body: &str) -> Result<Completion, String> {
    let mut reply: Value = serde_json::from_str(body).map_err(|_| "the upstream returned malformed JSON".to_owned())?;
    reply_of(&mut reply)
}

/// A parsed chat completion (Workers AI's 2026 models answer in this shape too).
pub fn reply_of(reply: &mut Value) -> Result<Completion, String> {
    let usage = reply.get("usage").and_then(Usage::from_json);
    let choice = reply.get_mut("choices").and_then(|c| c.get_mut(0)).ok_or("the upstream returned no choices")?;
    let finish = choice.get("finish_reason").and_then(Value::as_str).map_or(Finish::Stop, Finish::from_openai);
    let message = choice.get_mut("message").filter(|m| m.is_object()).ok_or("the upstream returned a choice without a message")?;
    let mut take = |k: &str| message.get_mut(k).map(Value::take);
    let text = match take("content") {
        Some(Value::String(s)) => s,
        // Some providers answer in content parts.
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
        _ => take("refusal").and_then(|r| r.as_str().map(str::to_owned)).unwrap_or_default(),
    };
    let reasoning = match (take("reasoning_content"), take("reasoning")) {
        (Some(Value::String(r)), _) => Some((ReasoningField::ReasoningContent, r)),
        (_, Some(Value::String(r))) => Some((ReasoningField::Reasoning, r)),
        _ => None,
    };
    let tool_calls = match take("tool_calls") {
        Some(Value::Array(calls)) => calls.iter().filter_map(tool_call).collect(),
        _ => Vec::new(),
    };
    Ok(Completion { text, reasoning, tool_calls, finish, usage })
}

fn tool_call(c: &Value) -> Option<ToolCall> {
    let f = c.get("function")?;
    let arguments = match f.get("arguments") {
        Some(Value::String(a)) => a.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => "{}".to_owned(),
    };
    Some(ToolCall::function(c.get("id").and_then(Value::as_str).unwrap_or(""), f.get("name")?.as_str()?, arguments))
}

// ---- streams

/// An OpenAI chunk stream: complete once it sent `finish_reason` or `[DONE]`.
/// Each event is read as a JSON value, its strings moved (not copied) into the
/// events: no serde derives, which cost far more Wasm than they save time.
#[derive(Default)]
pub struct StreamState {
    finished: bool,
    done: bool,
}

/// A string member, moved out.
fn take_str(v: &mut Value, k: &str) -> Option<Cow<'static, str>> {
    match v.get_mut(k).map(Value::take) {
        Some(Value::String(s)) if !s.is_empty() => Some(Cow::Owned(s)),
        _ => None,
    }
}

impl StreamState {
    pub fn complete(&self) -> bool {
        self.done || self.finished
    }

    pub fn event(&mut self, data: &str, emit: Emit) -> Result<(), StreamError> {
        if self.done {
            return Ok(()); // nothing after [DONE] counts
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed("an event that is not JSON"))?;
        self.chunk(chunk, emit)
    }

    /// One event, already parsed (Workers AI's OpenAI-shaped streams come here too).
    pub fn chunk(&mut self, mut chunk: Value, emit: Emit) -> Result<(), StreamError> {
        if !chunk.is_object() {
            return Err(StreamError::Malformed("an event that is not a JSON object"));
        }
        // Some providers send `"error": null` on every chunk: only a value is an error.
        if let Some(e) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(StreamError::Upstream(serde_json::json!({ "error": e }).to_string()));
        }
        if let Some(u) = chunk.get("usage").and_then(Usage::from_json) {
            emit(Event::Usage(u));
        }
        // One answer: the first choice (N-1 never asks for more).
        let Some(choice) = chunk.get_mut("choices").and_then(|c| c.get_mut(0)) else { return Ok(()) };
        if let Some(d) = choice.get_mut("delta").filter(|d| d.is_object()) {
            if let Some(r) = take_str(d, "reasoning_content") {
                emit(Event::Reasoning(ReasoningField::ReasoningContent, r));
            }
            if let Some(r) = take_str(d, "reasoning") {
                emit(Event::Reasoning(ReasoningField::Reasoning, r));
            }
            if let Some(t) = take_str(d, "content").or_else(|| take_str(d, "refusal")) {
                emit(Event::Text(t));
            }
            if let Some(Value::Array(calls)) = d.get_mut("tool_calls").map(Value::take) {
                for mut c in calls {
                    let index = c.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                    let id = take_str(&mut c, "id");
                    let f = c.get_mut("function");
                    let (name, arguments) = match f {
                        Some(f) => (take_str(f, "name"), take_str(f, "arguments")),
                        None => (None, None),
                    };
                    emit(Event::ToolCall { index, id, name, arguments: arguments.unwrap_or_default() });
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finished = true;
            emit(Event::Finish(Finish::from_openai(f)));
        }
        Ok(())
    }
}
