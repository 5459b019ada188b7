//! The internal request: what every inbound dialect decodes into, what the
//! ensemble policy works on, and what every provider builds its upstream body
//! from. Generation parameters use OpenAI Chat Completions' names (the lingua
//! franca of providers); fields N-1 does not know travel along in `extra` maps
//! and reach OpenAI-compatible upstreams untouched.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::core::error::N1Error;

#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The ensemble; `None`: the default one.
    pub model: Option<String>,
    pub messages: Vec<Message>,
    pub params: Params,
    pub stream: bool,
    /// A final usage chunk on streams (Chat Completions' `stream_options.include_usage`).
    pub include_usage: bool,
    /// Panel progress events on streams (`"n1": {"progress": true}` or `x-n1-progress`).
    pub progress: bool,
    /// Straight to one model, no panel (`"n1": {"direct": true}` or `x-n1-direct`).
    pub direct: bool,
    /// Tools the client offered that N-1 cannot run (hosted tools such as web
    /// search): dropped, and named in `n1.ignored_tools`.
    pub ignored_tools: Vec<String>,
    /// A stored conversation this one continues (the Responses API's `previous_response_id`).
    pub previous: Option<String>,
    /// Store this exchange, so a later request can continue it.
    pub store: bool,
    /// Fields of the client's request its dialect echoes in its reply.
    pub echo: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// The legacy function-calling result role.
    Function,
}

impl Role {
    pub const ALL: [(&'static str, Role); 6] = [
        ("system", Role::System),
        ("developer", Role::Developer),
        ("user", Role::User),
        ("assistant", Role::Assistant),
        ("tool", Role::Tool),
        ("function", Role::Function),
    ];

    pub fn as_str(self) -> &'static str {
        Role::ALL.iter().find(|(_, r)| *r == self).map_or("user", |(n, _)| n)
    }

    /// Instructions rather than conversation.
    pub fn is_system(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Content,
    pub name: Option<String>,
    /// An assistant turn's tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// A tool result's call.
    pub tool_call_id: Option<String>,
    /// Fields N-1 does not know, forwarded to OpenAI-compatible upstreams as they came.
    pub extra: Map<String, Value>,
}

impl Message {
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Message { role, content: Content::Text(text.into()), name: None, tool_calls: Vec::new(), tool_call_id: None, extra: Map::new() }
    }

    /// The text of the content (text parts joined by new lines).
    pub fn text(&self) -> Cow<'_, str> {
        match &self.content {
            Content::None => Cow::Borrowed(""),
            Content::Text(t) => Cow::Borrowed(t),
            Content::Parts(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(Part::text).collect();
                match texts.as_slice() {
                    [one] => Cow::Borrowed(one),
                    _ => Cow::Owned(texts.join("\n")),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `null` (an assistant turn that only called tools).
    None,
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image by URL (`https:` or `data:`).
    Image { url: String, detail: Option<String> },
    /// Any other part (audio, files, …): forwarded as it came to OpenAI-compatible upstreams.
    Other(Value),
}

impl Part {
    pub fn text(&self) -> Option<&str> {
        match self {
            Part::Text(t) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

impl ToolCall {
    pub fn function(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        ToolCall { id: id.into(), kind: "function", function: FunctionCall { name: name.into(), arguments: arguments.into() } }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    pub arguments: String,
}

/// Generation parameters, under OpenAI Chat Completions' names. A parameter the
/// client did not set (or set to null) is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Anthropic's `top_k` (the Messages dialect): sent to Anthropic and Workers AI
    /// upstreams, which take it; OpenAI-compatible ones get no `top_k` from it.
    pub top_k: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    /// `{"type": "json_schema", …}` / `{"type": "json_object"}`.
    pub response_format: Option<Value>,
    pub reasoning_effort: Option<String>,
    pub user: Option<String>,
    /// The client marked its prompt for Anthropic's prompt cache (`cache_control`,
    /// the Messages dialect): Anthropic upstreams are asked to cache it.
    pub prompt_cache: Option<PromptCache>,
    /// Everything else the client sent, forwarded as is to OpenAI-compatible upstreams.
    pub extra: Map<String, Value>,
}

/// How long Anthropic keeps a cached prompt (its `cache_control.ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptCache {
    FiveMinutes,
    OneHour,
}

impl Params {
    /// The client's cap on output tokens, under either name.
    pub fn output_cap(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    Function { name: String, description: Option<String>, parameters: Option<Value>, strict: Option<bool> },
    /// A tool of another type, forwarded as it came to OpenAI-compatible upstreams.
    Other(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
    /// Any other form, forwarded as it came to OpenAI-compatible upstreams.
    Other(Value),
}

// ---- what the policy needs to know about a request

impl Request {
    /// Whether any message carries an image (vision routing).
    pub fn has_images(&self) -> bool {
        self.messages.iter().any(|m| matches!(&m.content, Content::Parts(p) if p.iter().any(|p| matches!(p, Part::Image { .. }))))
    }

    /// Characters of text over all messages (image data is not text).
    pub fn text_chars(&self) -> usize {
        let part_chars = |p: &Part| p.text().map_or(0, |t| t.chars().count());
        self.messages
            .iter()
            .map(|m| match &m.content {
                Content::Text(t) => t.chars().count(),
                Content::Parts(parts) => parts.iter().map(part_chars).sum(),
                Content::None => 0,
            })
            .sum()
    }

    pub fn check_limits(&self, limits: &Limits) -> Result<(), N1Error> {
        if self.messages.len() > limits.max_messages {
            return Err(N1Error::InvalidRequest {
                message: format!("Too many messages: {} (the limit is {}).", self.messages.len(), limits.max_messages),
                param: Some("messages".into()),
                code: Some("too_many_messages"),
            });
        }
        let chars = self.text_chars();
        if chars > limits.max_chars {
            return Err(N1Error::InvalidRequest {
                message: format!("The messages hold {chars} characters of text; the limit is {}.", limits.max_chars),
                param: Some("messages".into()),
                code: Some("too_much_text"),
            });
        }
        Ok(())
    }
}

/// Caps on what one request may carry, beyond the body size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_messages: usize,
    /// Characters of text over all messages (image data is not text).
    pub max_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_messages: 1_000, max_chars: 1_000_000 }
    }
}

/// The conversation as the panel sees it: the panel answers in text and gets
/// no tool definitions, so tool calls and tool results become readable text
/// (many providers reject tool messages without tools).
pub fn panel_messages(messages: &[Message]) -> Cow<'_, [Message]> {
    let has_tools = messages.iter().any(|m| matches!(m.role, Role::Tool | Role::Function) || !m.tool_calls.is_empty());
    if !has_tools {
        return Cow::Borrowed(messages);
    }
    let converted = messages
        .iter()
        .map(|m| match m.role {
            Role::Tool | Role::Function => {
                let id = m.tool_call_id.as_deref().or(m.name.as_deref()).unwrap_or("?");
                Message::new(Role::User, format!("[Result of tool call {id}]\n{}", m.text()))
            }
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut parts: Vec<String> = Vec::new();
                let text = m.text();
                if !text.is_empty() {
                    parts.push(text.into_owned());
                }
                for c in &m.tool_calls {
                    parts.push(format!("[Called tool {} (call {}) with arguments {}]", c.function.name, c.id, c.function.arguments));
                }
                Message::new(Role::Assistant, parts.join("\n"))
            }
            _ => m.clone(),
        })
        .collect();
    Cow::Owned(converted)
}

/// `keep_history: false`: the client's system messages and its last user turn.
pub fn last_turn(messages: &[Message]) -> Vec<Message> {
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    messages.iter().enumerate().filter(|(i, m)| Some(*i) == last_user || m.role.is_system()).map(|(_, m)| m.clone()).collect()
}

/// The messages of one upstream call: ours (a system message) in front of the
/// client's, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Conversation<'a> {
    pub system: Option<&'a str>,
    pub messages: &'a [Message],
}

impl<'a> Conversation<'a> {
    pub fn new(messages: &'a [Message]) -> Self {
        Conversation { system: None, messages }
    }
}

// ---- OpenAI's wire form of messages (also the shape Workers AI takes)

impl Serialize for Conversation<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.messages.len() + self.system.is_some() as usize))?;
        if let Some(system) = self.system {
            seq.serialize_element(&Message::new(Role::System, system))?;
        }
        for m in self.messages {
            seq.serialize_element(m)?;
        }
        seq.end()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("role", self.role.as_str())?;
        map.serialize_entry("content", &self.content)?;
        if let Some(n) = &self.name {
            map.serialize_entry("name", n)?;
        }
        if !self.tool_calls.is_empty() {
            map.serialize_entry("tool_calls", &self.tool_calls)?;
        }
        if let Some(id) = &self.tool_call_id {
            map.serialize_entry("tool_call_id", id)?;
        }
        for (k, v) in &self.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Content::None => s.serialize_none(),
            Content::Text(t) => s.serialize_str(t),
            Content::Parts(parts) => parts.serialize(s),
        }
    }
}

#[derive(serde::Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Part::Other(v) => v.serialize(s),
            Part::Text(t) => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", t)?;
                map.end()
            }
            Part::Image { url, detail } => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("type", "image_url")?;
                map.serialize_entry("image_url", &ImageUrl { url, detail: detail.as_deref() })?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
