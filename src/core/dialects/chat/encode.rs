//! The ensemble's answer as a `chat.completion` object, and its event stream
//! as `chat.completion.chunk` events. Chunks are written directly: our identity
//! (serialized once per reply), then the event's delta.

use serde::Serialize;

use crate::core::dialects::{Encoder, ReplyIds};
use crate::core::ensemble::report::{N1Meta, Progress};
use crate::core::ensemble::Answer;
use crate::core::error::N1Error;
use crate::core::events::{Event, Finish, ReasoningField};
use crate::core::request::ToolCall;
use crate::core::sse;
use crate::core::usage::Usage;

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: &'a Usage,
    n1: &'a N1Meta,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [ToolCall],
}

/// A non-streaming reply.
pub fn reply(ids: &ReplyIds, a: &Answer) -> Vec<u8> {
    let c = &a.completion;
    let reasoning = |f: ReasoningField| c.reasoning.as_ref().filter(|(field, _)| *field == f).map(|(_, r)| r.as_str());
    let body = ChatCompletion {
        id: &ids.id,
        object: "chat.completion",
        created: ids.created,
        model: &ids.model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                // An answer that only calls tools has no content.
                content: (!c.text.is_empty() || c.tool_calls.is_empty()).then_some(c.text.as_str()),
                reasoning_content: reasoning(ReasoningField::ReasoningContent),
                reasoning: reasoning(ReasoningField::Reasoning),
                tool_calls: &c.tool_calls,
            },
            logprobs: None,
            finish_reason: c.finish.as_openai(),
        }],
        usage: &a.usage,
        n1: &a.meta,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A streamed reply: `chat.completion.chunk` events, `[DONE]` at the end.
pub struct ChatStream {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,`
    prefix: Vec<u8>,
    include_usage: bool,
    finish: Option<Finish>,
}

impl ChatStream {
    pub fn new(ids: &ReplyIds, include_usage: bool) -> Self {
        let mut prefix = Vec::with_capacity(96 + ids.id.len() + ids.model.len());
        prefix.extend_from_slice(b"{\"id\":");
        json_str(&mut prefix, &ids.id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.extend_from_slice(ids.created.to_string().as_bytes());
        prefix.extend_from_slice(b",\"model\":");
        json_str(&mut prefix, &ids.model);
        prefix.push(b',');
        ChatStream { prefix, include_usage, finish: None }
    }

    /// `data: {<prefix>"choices":[{"index":0,"delta":{` … then `close`.
    fn open(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b"\"choices\":[{\"index\":0,\"delta\":{");
    }

    /// `},"logprobs":null,"finish_reason":<finish>}]` + `tail` + `}\n\n`.
    fn close(out: &mut Vec<u8>, finish: Option<&Finish>, tail: &[u8]) {
        out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => json_str(out, f.as_openai()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]");
        out.extend_from_slice(tail);
        out.extend_from_slice(b"}\n\n");
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

impl Encoder for ChatStream {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.open(out);
        out.extend_from_slice(b"\"role\":\"assistant\",\"content\":\"\"");
        Self::close(out, None, b"");
    }

    /// A chunk with empty content (standard clients append nothing) and an
    /// `n1_progress` field.
    fn progress(&mut self, p: &Progress<'_>, out: &mut Vec<u8>) {
        self.open(out);
        out.extend_from_slice(b"\"content\":\"\"");
        let mut tail = b",\"n1_progress\":".to_vec();
        json(&mut tail, p);
        Self::close(out, None, &tail);
    }

    fn event(&mut self, ev: &Event<'_>, out: &mut Vec<u8>) {
        match ev {
            Event::Text(t) => {
                self.open(out);
                out.extend_from_slice(b"\"content\":");
                json_str(out, t);
            }
            Event::Reasoning(field, t) => {
                self.open(out);
                json_str(out, field.as_str());
                out.push(b':');
                json_str(out, t);
            }
            Event::ToolCall { index, id, name, arguments } => {
                self.open(out);
                out.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                out.extend_from_slice(index.to_string().as_bytes());
                if let Some(id) = id {
                    out.extend_from_slice(b",\"id\":");
                    json_str(out, id);
                    out.extend_from_slice(b",\"type\":\"function\"");
                }
                out.extend_from_slice(b",\"function\":{");
                if let Some(name) = name {
                    out.extend_from_slice(b"\"name\":");
                    json_str(out, name);
                    out.push(b',');
                }
                out.extend_from_slice(b"\"arguments\":");
                json_str(out, arguments);
                out.extend_from_slice(b"}}]");
            }
            // The finish chunk waits for the `n1` metadata (`finish`).
            Event::Finish(f) => {
                self.finish = Some(f.clone());
                return;
            }
            // The client gets the usage summed over every call (`finish`).
            Event::Usage(_) => return,
        }
        Self::close(out, None, b"");
    }

    /// The finish chunk with `n1`, the usage chunk when asked for, `[DONE]`.
    fn finish(&mut self, meta: &N1Meta, usage: &Usage, out: &mut Vec<u8>) {
        self.open(out);
        let mut tail = b",\"n1\":".to_vec();
        json(&mut tail, meta);
        Self::close(out, Some(self.finish.as_ref().unwrap_or(&Finish::Stop)), &tail);
        if self.include_usage {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(b"\"choices\":[],\"usage\":");
            json(out, usage);
            out.extend_from_slice(b"}\n\n");
        }
        out.extend_from_slice(sse::DONE);
    }

    /// An OpenAI error event, then `[DONE]`.
    fn fail(&mut self, e: &N1Error, out: &mut Vec<u8>) {
        sse::encode_data(out, &e.openai_json());
        out.extend_from_slice(sse::DONE);
    }
}
