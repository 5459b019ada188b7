//! The ensemble's answer as an Anthropic `message` object, and its event stream
//! as Anthropic's stream events: `message_start`, then per content block
//! `content_block_start` / `content_block_delta` / `content_block_stop` (a new
//! block whenever the kind changes: thinking, text, each tool call), then
//! `message_delta` (stop reason, the usage summed over every call, and `n1`)
//! and `message_stop`. Keep-alives are `ping` events, a failure after the
//! headers left an `error` event. Everything is written by hand (no serde
//! derives: the stream events are the hot path, and derives cost Wasm).

use serde::Serialize;
use serde_json::Value;

use crate::core::dialects::{Encoder, ReplyIds};
use crate::core::ensemble::report::{N1Meta, Progress};
use crate::core::ensemble::Answer;
use crate::core::error::N1Error;
use crate::core::json;
use crate::core::events::{Event, Finish};
use crate::core::usage::Usage;

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

fn num(out: &mut Vec<u8>, n: impl ToString) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Anthropic's `stop_reason`. Tool calls under a plain "stop" (some providers
/// say so) are still a `tool_use` stop: that is what agents look for.
/// N-1 cannot tell a stop sequence from a natural end (OpenAI-compatible
/// upstreams do not say), so `stop_sequence` is never reported.
fn stop_reason(f: &Finish, tool_calls: bool) -> &'static str {
    match f {
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
        _ if tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// Anthropic's usage object, summed over every call: like Anthropic's, its
/// `input_tokens` leaves out the prompt tokens the providers read from or
/// wrote to their caches, which have fields of their own.
fn usage(out: &mut Vec<u8>, u: &Usage) {
    let p = u.prompt_split();
    out.extend_from_slice(b"{\"input_tokens\":");
    num(out, p.plain);
    out.extend_from_slice(b",\"cache_creation_input_tokens\":");
    num(out, p.written_5m + p.written_1h);
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    num(out, p.read);
    out.extend_from_slice(b",\"output_tokens\":");
    num(out, u.completion_tokens);
    out.push(b'}');
}

/// The id of a tool call whose model gave none (a tool result must name it).
fn tool_id(ids: &ReplyIds, index: u32) -> String {
    format!("toolu_{}_{index}", ids.id.get(4..).unwrap_or_default())
}

/// A tool call's arguments as the `input` object (arguments that are not a
/// JSON object, e.g. cut off at `max_tokens`, become `{}`).
fn input(arguments: &str) -> Value {
    serde_json::from_str::<Value>(arguments).ok().filter(Value::is_object).unwrap_or_else(|| Value::Object(Default::default()))
}

/// A non-streaming reply: a `message` with `n1`.
pub fn reply(ids: &ReplyIds, a: &Answer) -> Vec<u8> {
    let c = &a.completion;
    let mut out = Vec::with_capacity(512 + c.text.len());
    out.extend_from_slice(b"{\"id\":");
    json_str(&mut out, &ids.id);
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    json_str(&mut out, &ids.model);
    out.extend_from_slice(b",\"content\":[");
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if let Some((_, thinking)) = &c.reasoning {
        sep(&mut out);
        out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
        json_str(&mut out, thinking);
        out.extend_from_slice(b",\"signature\":\"\"}");
    }
    // An answer that only calls tools has no text block.
    if !c.text.is_empty() || c.tool_calls.is_empty() {
        sep(&mut out);
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        json_str(&mut out, &c.text);
        out.push(b'}');
    }
    for (i, call) in c.tool_calls.iter().enumerate() {
        sep(&mut out);
        out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
        let id = if call.id.is_empty() { tool_id(ids, i as u32) } else { call.id.clone() };
        json_str(&mut out, &id);
        out.extend_from_slice(b",\"name\":");
        json_str(&mut out, &call.function.name);
        out.extend_from_slice(b",\"input\":");
        out.extend_from_slice(json::text(&input(&call.function.arguments)).as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"stop_reason\":\"");
    out.extend_from_slice(stop_reason(&c.finish, !c.tool_calls.is_empty()).as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":null,\"usage\":");
    usage(&mut out, &a.usage);
    out.extend_from_slice(b",\"n1\":");
    json(&mut out, &a.meta);
    out.push(b'}');
    out
}

/// The kind of the content block open in a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Text,
    Thinking,
    /// A tool call, by its index among the answer's tool calls.
    Tool(u32),
}

/// A streamed reply in Anthropic's events.
pub struct MessagesStream {
    ids: ReplyIds,
    /// The open block and its index.
    open: Option<(Block, u32)>,
    /// Blocks started so far (the next block's index).
    started: u32,
    /// Tool call index → its block's index.
    tools: Vec<(u32, u32)>,
    finish: Option<Finish>,
}

/// `event: <name>` and the start of its data object, `{"type":"<name>"`;
/// the caller writes the rest and `end`.
fn open_event(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"}\n\n");
}

impl MessagesStream {
    pub fn new(ids: &ReplyIds) -> Self {
        MessagesStream { ids: ids.clone(), open: None, started: 0, tools: Vec::new(), finish: None }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((_, index)) = self.open.take() {
            open_event(out, "content_block_stop");
            out.extend_from_slice(b",\"index\":");
            num(out, index);
            end(out);
        }
    }

    /// Open a block of `kind` unless it is the one open; its index.
    fn ensure(&mut self, kind: Block, tool: Option<(&str, &str)>, out: &mut Vec<u8>) -> u32 {
        if let Some((open, index)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.started;
        self.started += 1;
        self.open = Some((kind, index));
        open_event(out, "content_block_start");
        out.extend_from_slice(b",\"index\":");
        num(out, index);
        out.extend_from_slice(b",\"content_block\":");
        match (kind, tool) {
            (Block::Tool(_), Some((id, name))) => {
                out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
                json_str(out, id);
                out.extend_from_slice(b",\"name\":");
                json_str(out, name);
                out.extend_from_slice(b",\"input\":{}}");
            }
            (Block::Thinking, _) => out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}"),
            _ => out.extend_from_slice(b"{\"type\":\"text\",\"text\":\"\"}"),
        }
        end(out);
        index
    }

    /// `content_block_delta` of block `index`: `{"type": <kind>, <field>: <text>}`.
    fn delta(out: &mut Vec<u8>, index: u32, kind: &str, field: &str, text: &str) {
        open_event(out, "content_block_delta");
        out.extend_from_slice(b",\"index\":");
        num(out, index);
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":");
        json_str(out, text);
        out.push(b'}');
        end(out);
    }
}

impl Encoder for MessagesStream {
    /// `message_start`: the message without content; the usage is known only at the end.
    fn start(&mut self, out: &mut Vec<u8>) {
        open_event(out, "message_start");
        out.extend_from_slice(b",\"message\":{\"id\":");
        json_str(out, &self.ids.id);
        out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        json_str(out, &self.ids.model);
        out.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        usage(out, &Usage::default());
        out.push(b'}');
        end(out);
    }

    /// Anthropic's own keep-alive, which the SDKs skip.
    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    }

    /// An event of N-1's own type, `n1_progress`: the official SDKs pass event
    /// types they do not know through to the raw event stream and their
    /// message accumulators ignore them, so nothing breaks and nothing of it
    /// reaches the message.
    fn progress(&mut self, p: &Progress<'_>, out: &mut Vec<u8>) {
        open_event(out, "n1_progress");
        out.extend_from_slice(b",\"n1_progress\":");
        json(out, p);
        end(out);
    }

    fn event(&mut self, ev: &Event<'_>, out: &mut Vec<u8>) {
        match ev {
            Event::Text(t) if !t.is_empty() => {
                let index = self.ensure(Block::Text, None, out);
                Self::delta(out, index, "text_delta", "text", t);
            }
            Event::Reasoning(_, t) if !t.is_empty() => {
                let index = self.ensure(Block::Thinking, None, out);
                Self::delta(out, index, "thinking_delta", "thinking", t);
            }
            Event::ToolCall { index, id, name, arguments } => {
                let block = match self.tools.iter().find(|(tool, _)| tool == index) {
                    // Pieces of a call come to its block, even after another began.
                    Some(&(_, block)) => block,
                    None => {
                        let id = id.as_deref().filter(|id| !id.is_empty()).map_or_else(|| tool_id(&self.ids, *index), str::to_owned);
                        let block = self.ensure(Block::Tool(*index), Some((&id, name.as_deref().unwrap_or(""))), out);
                        self.tools.push((*index, block));
                        block
                    }
                };
                if !arguments.is_empty() {
                    Self::delta(out, block, "input_json_delta", "partial_json", arguments);
                }
            }
            Event::Finish(f) => self.finish = Some(f.clone()),
            // Empty text, and the summary model's own usage: the client gets
            // the usage summed over every call (`finish`).
            _ => {}
        }
    }

    /// The last block's stop, `message_delta` with the stop reason, the summed
    /// usage and `n1`, then `message_stop`.
    fn finish(&mut self, meta: &N1Meta, total: &Usage, out: &mut Vec<u8>) {
        if self.started == 0 {
            // A message always has content: an empty answer is an empty text block.
            self.ensure(Block::Text, None, out);
        }
        self.close(out);
        open_event(out, "message_delta");
        out.extend_from_slice(b",\"delta\":{\"stop_reason\":\"");
        let finish = self.finish.take().unwrap_or_default();
        out.extend_from_slice(stop_reason(&finish, !self.tools.is_empty()).as_bytes());
        out.extend_from_slice(b"\",\"stop_sequence\":null},\"usage\":");
        usage(out, total);
        out.extend_from_slice(b",\"n1\":");
        json(out, meta);
        end(out);
        open_event(out, "message_stop");
        end(out);
    }

    /// An `error` event (the SDKs raise it as an API error); the stream ends.
    fn fail(&mut self, e: &N1Error, out: &mut Vec<u8>) {
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(e.anthropic_json().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}
