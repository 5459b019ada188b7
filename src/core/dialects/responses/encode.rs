//! The ensemble's answer as a Responses API `response` object, and its event
//! stream as the documented sequence: `response.created`, `response.in_progress`,
//! per output item `output_item.added` → deltas → `.done` events →
//! `output_item.done`, then `response.completed` (or `response.incomplete`
//! when cut by length, `response.failed` when something broke), each with a
//! `sequence_number`.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::decode::{CUSTOM_TOOLS, NAMESPACES};
use crate::core::dialects::{Encoder, ReplyIds};
use crate::core::ensemble::report::{N1Meta, Progress};
use crate::core::ensemble::Answer;
use crate::core::error::N1Error;
use crate::core::events::{Completion, Event, Finish};
use crate::core::request::Request;
use crate::core::usage::Usage;

#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    background: bool,
    error: Option<ErrorObject<'a>>,
    incomplete_details: Option<Incomplete>,
    instructions: Cow<'a, Value>,
    max_output_tokens: Cow<'a, Value>,
    metadata: Cow<'a, Value>,
    model: &'a str,
    output: Vec<Item<'a>>,
    parallel_tool_calls: Cow<'a, Value>,
    previous_response_id: Cow<'a, Value>,
    reasoning: Cow<'a, Value>,
    store: Cow<'a, Value>,
    temperature: Cow<'a, Value>,
    text: Cow<'a, Value>,
    tool_choice: Cow<'a, Value>,
    tools: Cow<'a, Value>,
    top_p: Cow<'a, Value>,
    truncation: Cow<'a, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<ResponseUsage>,
    user: Cow<'a, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n1: Option<&'a N1Meta>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'a str,
    message: String,
}

#[derive(Serialize)]
struct Incomplete {
    reason: &'static str,
}

#[derive(Serialize)]
struct ResponseUsage {
    input_tokens: u64,
    input_tokens_details: Cached,
    output_tokens: u64,
    output_tokens_details: Reasoning,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Cached {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct Reasoning {
    reasoning_tokens: u64,
}

impl From<&Usage> for ResponseUsage {
    fn from(u: &Usage) -> Self {
        ResponseUsage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: Cached { cached_tokens: u.cached_tokens },
            output_tokens: u.completion_tokens,
            output_tokens_details: Reasoning { reasoning_tokens: 0 },
            total_tokens: u.total_tokens,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Reasoning { id: String, summary: [(); 0], content: Vec<Part<'a>> },
    Message { id: String, status: &'static str, role: &'static str, content: Vec<Part<'a>> },
    FunctionCall {
        id: String,
        call_id: Cow<'a, str>,
        name: &'a str,
        arguments: &'a str,
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
    },
    CustomToolCall { id: String, call_id: Cow<'a, str>, name: &'a str, input: String, status: &'static str },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    OutputText { text: &'a str, annotations: [(); 0] },
    ReasoningText { text: &'a str },
}

/// What a reply is built from.
struct Parts<'a> {
    ids: &'a ReplyIds,
    echo: &'a Map<String, Value>,
}

impl<'a> Parts<'a> {
    fn echo(&self, k: &str, default: Value) -> Cow<'a, Value> {
        self.echo.get(k).map_or(Cow::Owned(default), Cow::Borrowed)
    }

    fn suffix(&self) -> &'a str {
        self.ids.id.strip_prefix("resp_").unwrap_or(&self.ids.id)
    }

    fn object(&self, status: &'static str, output: Vec<Item<'a>>, usage: Option<&Usage>, n1: Option<&'a N1Meta>) -> ResponseObject<'a> {
        ResponseObject {
            id: &self.ids.id,
            object: "response",
            created_at: self.ids.created,
            status,
            background: false,
            error: None,
            incomplete_details: None,
            instructions: self.echo("instructions", Value::Null),
            max_output_tokens: self.echo("max_output_tokens", Value::Null),
            metadata: self.echo("metadata", json!({})),
            model: &self.ids.model,
            output,
            parallel_tool_calls: self.echo("parallel_tool_calls", true.into()),
            previous_response_id: self.echo("previous_response_id", Value::Null),
            reasoning: self.echo("reasoning", json!({"effort": null, "summary": null})),
            store: self.echo("store", true.into()),
            temperature: self.echo("temperature", Value::Null),
            text: self.echo("text", json!({"format": {"type": "text"}})),
            tool_choice: self.echo("tool_choice", "auto".into()),
            tools: self.echo("tools", json!([])),
            top_p: self.echo("top_p", Value::Null),
            truncation: self.echo("truncation", "disabled".into()),
            usage: usage.map(ResponseUsage::from),
            user: self.echo("user", Value::Null),
            n1,
        }
    }

    /// The output items of an answer, in order: reasoning, the message, the calls.
    fn items(&self, c: &'a Completion) -> Vec<Item<'a>> {
        let mut out = Vec::new();
        if let Some((_, r)) = &c.reasoning {
            out.push(self.reasoning(r));
        }
        if !c.text.is_empty() || c.tool_calls.is_empty() {
            out.push(self.message(&c.text, "completed"));
        }
        out.extend((0..c.tool_calls.len()).map(|i| self.call(c, i, "completed")));
        out
    }

    fn reasoning(&self, text: &'a str) -> Item<'a> {
        Item::Reasoning { id: format!("rs_{}", self.suffix()), summary: [], content: vec![Part::ReasoningText { text }] }
    }

    fn message(&self, text: &'a str, status: &'static str) -> Item<'a> {
        let content = if status == "completed" { vec![Part::OutputText { text, annotations: [] }] } else { Vec::new() };
        Item::Message { id: format!("msg_{}", self.suffix()), status, role: "assistant", content }
    }

    fn call(&self, c: &'a Completion, i: usize, status: &'static str) -> Item<'a> {
        let t = &c.tool_calls[i];
        let id = format!("fc_{}_{i}", self.suffix());
        let call_id = if t.id.is_empty() { Cow::Owned(format!("call_{}_{i}", self.suffix())) } else { Cow::Borrowed(t.id.as_str()) };
        let name = t.function.name.as_str();
        let custom = self.echo.get(CUSTOM_TOOLS).and_then(Value::as_array).is_some_and(|l| l.iter().any(|n| n == name));
        if custom {
            // The model called a function with one string argument: the tool's input.
            let input = serde_json::from_str::<Value>(&t.function.arguments)
                .ok()
                .and_then(|a| a.get("input").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| t.function.arguments.clone());
            return Item::CustomToolCall { id, call_id, name, input: if status == "completed" { input } else { String::new() }, status };
        }
        let namespace = self.echo.get(NAMESPACES).and_then(|m| m.get(name)).and_then(Value::as_str);
        let arguments = if status == "completed" { t.function.arguments.as_str() } else { "" };
        Item::FunctionCall { id, call_id, name, arguments, status, namespace }
    }
}

fn status_of(c: &Completion) -> (&'static str, Option<Incomplete>) {
    match c.finish {
        Finish::Length => ("incomplete", Some(Incomplete { reason: "max_output_tokens" })),
        Finish::ContentFilter => ("incomplete", Some(Incomplete { reason: "content_filter" })),
        _ => ("completed", None),
    }
}

/// A non-streaming reply.
pub fn reply(ids: &ReplyIds, req: &Request, a: &Answer) -> Vec<u8> {
    let p = Parts { ids, echo: &req.echo };
    let (status, incomplete) = status_of(&a.completion);
    let mut obj = p.object(status, p.items(&a.completion), Some(&a.usage), Some(&a.meta));
    obj.incomplete_details = incomplete;
    serde_json::to_vec(&obj).unwrap_or_default()
}

/// An output item of a stream.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Reasoning,
    Message,
    /// The answer's tool call at this index.
    Call(usize),
}

/// A streamed reply.
pub struct ResponsesStream {
    ids: ReplyIds,
    echo: Map<String, Value>,
    seq: u64,
    /// The answer so far (the `.done` events and the final response repeat it).
    answer: Completion,
    /// Output items opened so far, in order; the last one receives deltas while `open`.
    items: Vec<Kind>,
    open: bool,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    output_index: usize,
    item: &'a Item<'a>,
}

#[derive(Serialize)]
struct PartEvent<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    part: Part<'a>,
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct InputDone<'a> {
    item_id: &'a str,
    output_index: usize,
    input: &'a str,
}

#[derive(Serialize)]
struct Delta<'a> {
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

#[derive(Serialize)]
struct ResponseEvent<'a> {
    response: &'a ResponseObject<'a>,
}

#[derive(Serialize)]
struct ProgressEvent<'a> {
    progress: &'a Progress<'a>,
}

impl Item<'_> {
    fn id(&self) -> &str {
        match self {
            Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::FunctionCall { id, .. } | Item::CustomToolCall { id, .. } => id,
        }
    }
}

/// `event: <type>` + `data: {"type": <type>, "sequence_number": n, …}`.
fn emit<T: Serialize>(seq: &mut u64, out: &mut Vec<u8>, kind: &str, fields: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    *seq += 1;
    let body = serde_json::to_vec(fields).unwrap_or_default();
    // `fields` is an object: its members follow ours.
    if body.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&body[1..body.len() - 1]);
    }
    out.extend_from_slice(b"}\n\n");
}

impl ResponsesStream {
    pub fn new(ids: &ReplyIds, req: &Request) -> Self {
        ResponsesStream { ids: ids.clone(), echo: req.echo.clone(), seq: 0, answer: Completion::default(), items: Vec::new(), open: false }
    }

    fn parts(&self) -> Parts<'_> {
        Parts { ids: &self.ids, echo: &self.echo }
    }

    /// The item of `kind`, as it stands (`in_progress`) or whole (`completed`).
    fn item(&self, kind: Kind, status: &'static str) -> Item<'_> {
        let p = self.parts();
        match kind {
            Kind::Reasoning => p.reasoning(if status == "completed" { self.answer.reasoning.as_ref().map_or("", |(_, r)| r.as_str()) } else { "" }),
            Kind::Message => p.message(&self.answer.text, status),
            Kind::Call(i) => p.call(&self.answer, i, status),
        }
    }

    /// Make `kind` the item receiving deltas (closing the one before).
    fn open(&mut self, kind: Kind, out: &mut Vec<u8>) {
        if self.open && self.items.last() == Some(&kind) {
            return;
        }
        self.close(out);
        self.items.push(kind);
        self.open = true;
        let output_index = self.items.len() - 1;
        let mut seq = self.seq;
        let item = self.item(kind, "in_progress");
        emit(&mut seq, out, "response.output_item.added", &ItemEvent { output_index, item: &item });
        let part = match kind {
            Kind::Reasoning => Some(Part::ReasoningText { text: "" }),
            Kind::Message => Some(Part::OutputText { text: "", annotations: [] }),
            Kind::Call(_) => None,
        };
        if let Some(part) = part {
            emit(&mut seq, out, "response.content_part.added", &PartEvent { item_id: item.id(), output_index, content_index: 0, part });
        }
        self.seq = seq;
    }

    /// End the item receiving deltas: its `.done` events with the whole of it.
    fn close(&mut self, out: &mut Vec<u8>) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let Some(&kind) = self.items.last() else { return };
        let output_index = self.items.len() - 1;
        let mut seq = self.seq;
        let item = self.item(kind, "completed");
        let item_id = item.id();
        match &item {
            Item::Reasoning { content, .. } | Item::Message { content, .. } => {
                let (event, part) = match (kind, content.first()) {
                    (Kind::Reasoning, Some(Part::ReasoningText { text })) => ("response.reasoning_text.done", Part::ReasoningText { text }),
                    (_, Some(Part::OutputText { text, .. })) => ("response.output_text.done", Part::OutputText { text, annotations: [] }),
                    _ => ("response.output_text.done", Part::OutputText { text: "", annotations: [] }),
                };
                let text = match &part {
                    Part::OutputText { text, .. } | Part::ReasoningText { text } => *text,
                };
                emit(&mut seq, out, event, &TextDone { item_id, output_index, content_index: 0, text, logprobs: [] });
                emit(&mut seq, out, "response.content_part.done", &PartEvent { item_id, output_index, content_index: 0, part });
            }
            Item::FunctionCall { name, arguments, .. } => {
                emit(&mut seq, out, "response.function_call_arguments.done", &ArgumentsDone { item_id, output_index, name, arguments });
            }
            Item::CustomToolCall { input, .. } => {
                emit(&mut seq, out, "response.custom_tool_call_input.done", &InputDone { item_id, output_index, input });
            }
        }
        emit(&mut seq, out, "response.output_item.done", &ItemEvent { output_index, item: &item });
        self.seq = seq;
    }
}

impl Encoder for ResponsesStream {
    fn start(&mut self, out: &mut Vec<u8>) {
        let mut seq = self.seq;
        let response = self.parts().object("in_progress", Vec::new(), None, None);
        emit(&mut seq, out, "response.created", &ResponseEvent { response: &response });
        emit(&mut seq, out, "response.in_progress", &ResponseEvent { response: &response });
        self.seq = seq;
    }

    fn progress(&mut self, p: &Progress<'_>, out: &mut Vec<u8>) {
        emit(&mut self.seq, out, "n1.progress", &ProgressEvent { progress: p });
    }

    fn event(&mut self, ev: &Event<'_>, out: &mut Vec<u8>) {
        self.answer.collect(ev.clone());
        let (kind, delta) = match ev {
            Event::Text(t) => (Kind::Message, t),
            Event::Reasoning(_, t) => (Kind::Reasoning, t),
            Event::ToolCall { index, arguments, .. } => (Kind::Call(*index as usize), arguments),
            Event::Usage(_) | Event::Finish(_) => return,
        };
        self.open(kind, out);
        let output_index = self.items.len() - 1;
        let item = self.item(kind, "in_progress");
        let (event, content_index) = match (&item, kind) {
            // A custom tool's input is known whole only at the end (its `.done` event).
            (Item::CustomToolCall { .. }, _) => return,
            (_, Kind::Message) => ("response.output_text.delta", Some(0)),
            (_, Kind::Reasoning) => ("response.reasoning_text.delta", Some(0)),
            (_, Kind::Call(_)) => ("response.function_call_arguments.delta", None),
        };
        if delta.is_empty() {
            return;
        }
        let logprobs = content_index.map(|_| []);
        let mut seq = self.seq;
        emit(&mut seq, out, event, &Delta { item_id: item.id(), output_index, content_index, delta, logprobs });
        self.seq = seq;
    }

    fn finish(&mut self, meta: &N1Meta, usage: &Usage, out: &mut Vec<u8>) {
        self.close(out);
        let (status, incomplete) = status_of(&self.answer);
        let mut seq = self.seq;
        let p = self.parts();
        let mut obj = p.object(status, p.items(&self.answer), Some(usage), Some(meta));
        obj.incomplete_details = incomplete;
        let event = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        emit(&mut seq, out, event, &ResponseEvent { response: &obj });
        self.seq = seq;
    }

    /// `response.failed`, with what was answered before the failure.
    fn fail(&mut self, e: &N1Error, out: &mut Vec<u8>) {
        self.close(out);
        let mut seq = self.seq;
        let p = self.parts();
        let mut obj = p.object("failed", p.items(&self.answer), None, None);
        obj.error = Some(ErrorObject { code: e.code().unwrap_or("server_error"), message: e.message() });
        emit(&mut seq, out, "response.failed", &ResponseEvent { response: &obj });
        self.seq = seq;
    }
}
