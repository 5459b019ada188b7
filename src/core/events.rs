//! The internal event stream: what every provider's stream decodes into and
//! every dialect encodes for its clients. Text borrows from the upstream's
//! event where it can (no copy unless the JSON string had escapes), so a
//! relayed chunk costs one parse and one write, never a JSON tree.

use std::borrow::Cow;

use serde::Serialize;

use crate::core::request::ToolCall;
use crate::core::usage::Usage;

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Finish {
    #[default]
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other(String),
}

impl Finish {
    /// From OpenAI's `finish_reason`.
    pub fn from_openai(s: &str) -> Finish {
        match s {
            "stop" => Finish::Stop,
            "length" => Finish::Length,
            "tool_calls" | "function_call" => Finish::ToolCalls,
            "content_filter" => Finish::ContentFilter,
            other => Finish::Other(other.to_owned()),
        }
    }

    /// OpenAI's `finish_reason`.
    pub fn as_openai(&self) -> &str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
            Finish::ContentFilter => "content_filter",
            Finish::Other(s) => s,
        }
    }
}

impl Serialize for Finish {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_openai())
    }
}

/// The field a provider streams reasoning under; relayed under the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningField {
    /// DeepSeek, vLLM, Workers AI, and Anthropic thinking translated.
    #[default]
    ReasoningContent,
    /// OpenRouter, Groq, Ollama.
    Reasoning,
}

impl ReasoningField {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningField::ReasoningContent => "reasoning_content",
            ReasoningField::Reasoning => "reasoning",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// Answer text.
    Text(Cow<'a, str>),
    Reasoning(ReasoningField, Cow<'a, str>),
    /// A piece of a tool call; `id` and `name` come with its first piece.
    ToolCall { index: u32, id: Option<Cow<'a, str>>, name: Option<Cow<'a, str>>, arguments: Cow<'a, str> },
    Usage(Usage),
    Finish(Finish),
}

impl Event<'_> {
    /// Part of the answer itself (not bookkeeping): once one has reached the
    /// client, another model can no longer take over.
    pub fn is_content(&self) -> bool {
        matches!(self, Event::Text(_) | Event::Reasoning(..) | Event::ToolCall { .. })
    }
}

/// Where decoded events go.
pub type Emit<'e> = &'e mut dyn FnMut(Event<'_>);

/// A whole answer: from a non-streaming reply, or events collected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub text: String,
    pub reasoning: Option<(ReasoningField, String)>,
    pub tool_calls: Vec<ToolCall>,
    pub finish: Finish,
    pub usage: Option<Usage>,
}

impl Completion {
    pub fn text(text: impl Into<String>) -> Self {
        Completion { text: text.into(), ..Completion::default() }
    }

    /// Add one event (a streamed answer, assembled).
    pub fn collect(&mut self, ev: Event<'_>) {
        match ev {
            Event::Text(t) => self.text.push_str(&t),
            Event::Reasoning(field, t) => self.reasoning.get_or_insert_with(|| (field, String::new())).1.push_str(&t),
            Event::ToolCall { index, id, name, arguments } => {
                let i = index as usize;
                while self.tool_calls.len() <= i {
                    self.tool_calls.push(ToolCall::function("", "", ""));
                }
                let call = &mut self.tool_calls[i];
                if let Some(id) = id {
                    call.id.push_str(&id);
                }
                if let Some(name) = name {
                    call.function.name.push_str(&name);
                }
                call.function.arguments.push_str(&arguments);
            }
            Event::Usage(u) => self.usage = Some(u),
            Event::Finish(f) => self.finish = f,
        }
    }

    /// The answer as events, in stream order (a best-panel-answer fallback on a stream).
    pub fn events(&self) -> Vec<Event<'_>> {
        let mut out = Vec::new();
        if let Some((field, r)) = &self.reasoning {
            out.push(Event::Reasoning(*field, Cow::Borrowed(r.as_str())));
        }
        if !self.text.is_empty() {
            out.push(Event::Text(Cow::Borrowed(&self.text)));
        }
        for (i, c) in self.tool_calls.iter().enumerate() {
            out.push(Event::ToolCall {
                index: i as u32,
                id: Some(Cow::Borrowed(&c.id)),
                name: Some(Cow::Borrowed(&c.function.name)),
                arguments: Cow::Borrowed(&c.function.arguments),
            });
        }
        out.push(Event::Finish(self.finish.clone()));
        out
    }
}

/// Why a provider's stream could not be read to its end.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamError {
    /// An event that is not what the provider's format says, or a line too long to be SSE.
    Malformed(&'static str),
    /// The upstream sent an error event mid-stream (its body, to be summarized and scrubbed).
    Upstream(String),
    /// The stream ended before its end marker (`finish_reason`, `[DONE]`, `message_stop`).
    Truncated,
}

impl StreamError {
    /// An error event's `error` member, kept as the text `{"error": …}`.
    pub fn upstream(error: serde_json::Value) -> StreamError {
        StreamError::Upstream(crate::core::json::text(&crate::core::json::object([("error", error)])))
    }

    /// A client-facing message about the stream of `who` (`"summary model"`);
    /// `reason` is the upstream's error, already scrubbed.
    pub fn message(&self, who: &str, reason: Option<&str>) -> String {
        match self {
            StreamError::Malformed(m) => format!("The {who}'s stream was malformed: {m}."),
            StreamError::Upstream(_) => format!("The {who} reported an error mid-stream: {}", reason.unwrap_or("")),
            StreamError::Truncated => format!("The {who}'s stream ended before the answer was complete."),
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
