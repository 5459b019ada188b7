//! OpenAI-compatible chat completions (OpenAI, Groq, Together, vLLM, Azure, …):
//! the request body, borrowed from the request (nothing is copied); the reply;
//! and the one stream parser every OpenAI-shaped stream goes through (Workers
//! AI's newer models reuse it).

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::Call;
use crate::core::events::{Completion, Emit, Event, Finish, ReasoningField, StreamError};
use crate::core::json;
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
        Some(v) if !v.is_null() => json::text(v),
        _ => "{}".to_owned(),
    };
    Some(ToolCall::function(c.get("id").and_then(Value::as_str).unwrap_or(""), f.get("name")?.as_str()?, arguments))
}

// ---- streams

/// An OpenAI chunk stream: complete once it sent `finish_reason` or `[DONE]`.
/// Each event is read by `typed`: the text borrowed from it, the rest skipped.
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

    /// `[DONE]` came: nothing after it counts.
    pub fn ended(&self) -> bool {
        self.done
    }

    pub fn event(&mut self, data: &str, emit: Emit) -> Result<(), StreamError> {
        if self.done {
            return Ok(()); // nothing after [DONE] counts
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let c: typed::Chunk = serde_json::from_str(data).map_err(|_| StreamError::Malformed("an event that is not JSON"))?;
        if !c.object {
            return Err(StreamError::Malformed("an event that is not a JSON object"));
        }
        // Some providers send `"error": null` on every chunk: only a value is an error.
        if let Some(e) = c.error {
            return Err(StreamError::upstream(e));
        }
        if let Some(u) = c.usage.as_ref().and_then(Usage::from_json) {
            emit(Event::Usage(u));
        }
        let d = c.delta;
        fn some(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
            s.filter(|s| !s.is_empty())
        }
        if let Some(r) = some(d.reasoning_content) {
            emit(Event::Reasoning(ReasoningField::ReasoningContent, r));
        }
        if let Some(r) = some(d.reasoning) {
            emit(Event::Reasoning(ReasoningField::Reasoning, r));
        }
        if let Some(t) = some(d.content).or_else(|| some(d.refusal)) {
            emit(Event::Text(t));
        }
        if let Some(Value::Array(calls)) = d.tool_calls {
            tool_call_deltas(calls, emit);
        }
        if let Some(f) = c.finish {
            self.finished = true;
            emit(Event::Finish(Finish::from_openai(&f)));
        }
        Ok(())
    }
}

/// `delta.tool_calls`: pieces of tool calls (rare enough to be read as values).
fn tool_call_deltas(calls: Vec<Value>, emit: Emit) {
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

/// An OpenAI stream chunk with only what N-1 reads: the text fields borrowed
/// from the event (copied only when the JSON string has escapes), everything
/// else read through without being kept. Read as a `Value` would be: the
/// same JSON is valid, a member of an unexpected type counts as absent, and a
/// repeated one replaces the one before. Hand-written, not derived: derives and serde's
/// "invalid type" errors cost Wasm bytes (its float formatting, 14 KiB gzipped).
mod typed {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    #[derive(Default)]
    pub struct Chunk<'a> {
        /// It was a JSON object.
        pub object: bool,
        /// A non-null `error`.
        pub error: Option<Value>,
        pub usage: Option<Value>,
        /// The first choice's (N-1 never asks for more).
        pub delta: Delta<'a>,
        pub finish: Option<Cow<'a, str>>,
    }

    #[derive(Default)]
    pub struct Delta<'a> {
        pub content: Option<Cow<'a, str>>,
        pub refusal: Option<Cow<'a, str>>,
        pub reasoning_content: Option<Cow<'a, str>>,
        pub reasoning: Option<Cow<'a, str>>,
        pub tool_calls: Option<Value>,
    }

    /// What is being read: one visitor for every part of a chunk (through
    /// `deserialize_any`), so serde_json's code for it exists once.
    enum Part<'c, 'a> {
        Chunk(&'c mut Chunk<'a>),
        Choices(&'c mut Chunk<'a>),
        Choice(&'c mut Chunk<'a>),
        Delta(&'c mut Delta<'a>),
        /// A string (anything else: none).
        Text(&'c mut Option<Cow<'a, str>>),
        Key(&'c mut Cow<'a, str>),
        /// Anything else: read through and dropped (with this same visitor,
        /// rather than serde's `IgnoredAny`, whose code would be extra bytes).
        Skip,
    }

    impl Part<'_, '_> {
        /// A value that is not what this part is: skipped, and a text is then absent.
        fn other(self) {
            if let Part::Text(t) = self {
                *t = None;
            }
        }
    }

    impl<'de> Visitor<'de> for Part<'_, 'de> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }

        fn visit_map<A: MapAccess<'de>>(mut self, mut m: A) -> Result<(), A::Error> {
            if let Part::Chunk(c) = &mut self {
                c.object = true;
            }
            if !matches!(self, Part::Chunk(_) | Part::Choice(_) | Part::Delta(_)) {
                while m.next_key_seed(Part::Skip)?.is_some() {
                    m.next_value_seed(Part::Skip)?;
                }
                self.other();
                return Ok(());
            }
            let mut k = Cow::Borrowed("");
            while m.next_key_seed(Part::Key(&mut k))?.is_some() {
                match (&mut self, &*k) {
                    (Part::Chunk(c), "error") => c.error = Some(m.next_value::<Value>()?).filter(|e| !e.is_null()),
                    (Part::Chunk(c), "usage") => c.usage = Some(m.next_value()?),
                    (Part::Chunk(c), "choices") => {
                        (c.delta, c.finish) = Default::default();
                        m.next_value_seed(Part::Choices(c))?
                    }
                    (Part::Choice(c), "delta") => {
                        c.delta = Delta::default();
                        m.next_value_seed(Part::Delta(&mut c.delta))?
                    }
                    (Part::Choice(c), "finish_reason") => m.next_value_seed(Part::Text(&mut c.finish))?,
                    (Part::Delta(d), "content") => m.next_value_seed(Part::Text(&mut d.content))?,
                    (Part::Delta(d), "refusal") => m.next_value_seed(Part::Text(&mut d.refusal))?,
                    (Part::Delta(d), "reasoning_content") => m.next_value_seed(Part::Text(&mut d.reasoning_content))?,
                    (Part::Delta(d), "reasoning") => m.next_value_seed(Part::Text(&mut d.reasoning))?,
                    (Part::Delta(d), "tool_calls") => d.tool_calls = Some(m.next_value()?),
                    _ => m.next_value_seed(Part::Skip)?,
                }
            }
            Ok(())
        }

        /// `choices`: the first is read, the rest skipped.
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
            match self {
                Part::Choices(c) => {
                    s.next_element_seed(Part::Choice(c))?;
                }
                other => other.other(),
            }
            while s.next_element_seed(Part::Skip)?.is_some() {}
            Ok(())
        }

        fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<(), E> {
            match self {
                Part::Text(t) => *t = Some(Cow::Borrowed(v)),
                Part::Key(k) => *k = Cow::Borrowed(v),
                _ => {}
            }
            Ok(())
        }

        /// A string with escapes: copied.
        fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
            match self {
                Part::Text(t) => *t = Some(Cow::Owned(v.to_owned())),
                Part::Key(k) => *k = Cow::Owned(v.to_owned()),
                _ => {}
            }
            Ok(())
        }

        fn visit_unit<E: Error>(self) -> Result<(), E> {
            self.other();
            Ok(())
        }

        fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
            self.other();
            Ok(())
        }

        fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
            self.other();
            Ok(())
        }

        fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
            self.other();
            Ok(())
        }

        fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
            self.other();
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for Part<'_, 'de> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Deserialize<'de> for Chunk<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let mut c = Chunk::default();
            d.deserialize_any(Part::Chunk(&mut c))?;
            Ok(c)
        }
    }
}
