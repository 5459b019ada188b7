//! Messages requests → the internal request, read by reference from one JSON
//! value (no serde derives, and few formatted strings: both cost Wasm). Known
//! fields are checked for their JSON type and range, and a 400 names the field
//! (or the message and content block); fields this dialect does not use, and
//! unknown ones, are accepted and dropped, never forwarded (they are
//! Anthropic's, and OpenAI-compatible upstreams would refuse them).
//!
//! The mapping: `system` (a string or text blocks) and system messages inside
//! `messages` → system messages; `tool_result` blocks → tool messages (before
//! the rest of their user turn; `is_error` marks the text, images move to the
//! user turn); `tool_use` blocks → tool calls; `document` blocks → their text,
//! where they have one; `thinking` blocks of earlier turns are dropped; custom
//! tools → function tools, server tools → `ignored_tools`.

use serde_json::{Map, Value};

use crate::core::dialects::chat::parse_json;
use crate::core::error::N1Error;
use crate::core::json;
use crate::core::request::{Content, Message, Params, Part, PromptCache, Request, Role, Tool, ToolCall, ToolChoice};

/// Why a message, block or tool is malformed: the end of the 400's message,
/// after the name of what it is about.
type Why = &'static str;

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int(i64),
    /// A number in 0..=1.
    Unit,
    Obj,
    Arr,
    Strs,
    StrOrArr,
    StrOrObj,
}

/// Known top-level fields, the JSON type each must have (null: not set), and
/// what the 400 says otherwise. Those past `n1` are accepted and ignored.
const FIELDS: &[(&str, Kind, Why)] = &[
    ("model", Kind::Str, "must be a string."),
    ("messages", Kind::Arr, "must be an array."),
    ("max_tokens", Kind::Int(1), "must be an integer of at least 1."),
    ("system", Kind::StrOrArr, "must be a string or an array of text blocks."),
    ("temperature", Kind::Unit, "must be a number between 0 and 1."),
    ("top_p", Kind::Unit, "must be a number between 0 and 1."),
    ("top_k", Kind::Int(0), "must be an integer of at least 0."),
    ("stop_sequences", Kind::Strs, "must be an array of strings."),
    ("stream", Kind::Bool, "must be a boolean."),
    ("tools", Kind::Arr, "must be an array."),
    ("tool_choice", Kind::Obj, "must be an object."),
    ("thinking", Kind::Obj, "must be an object."),
    ("metadata", Kind::Obj, "must be an object."),
    ("n1", Kind::Obj, "must be an object."),
    ("service_tier", Kind::Str, "must be a string."),
    ("container", Kind::StrOrObj, "must be a string or an object."),
    ("mcp_servers", Kind::Arr, "must be an array."),
    ("context_management", Kind::Obj, "must be an object."),
    ("output_config", Kind::Obj, "must be an object."),
    ("output_format", Kind::Obj, "must be an object."),
    ("inference_geo", Kind::Str, "must be a string."),
    ("speed", Kind::Str, "must be a string."),
    ("cache_control", Kind::Obj, "must be an object."),
    ("diagnostics", Kind::Obj, "must be an object."),
];

/// A 400 naming the field: "`<param>` <what>".
fn bad(param: &str, what: &str) -> N1Error {
    N1Error::invalid(format!("`{param}` {what}"), Some(param))
}

/// `POST /v1/messages`.
pub fn decode(bytes: &[u8]) -> Result<Request, N1Error> {
    decode_body(bytes, true)
}

/// `POST /v1/messages/count_tokens`: the same request, without `max_tokens`.
pub fn decode_count(bytes: &[u8]) -> Result<Request, N1Error> {
    decode_body(bytes, false)
}

fn decode_body(bytes: &[u8], create: bool) -> Result<Request, N1Error> {
    let body = parse_json(bytes)?;
    let Some(obj) = body.as_object() else {
        return Err(N1Error::invalid("The request body must be a JSON object.", None));
    };
    check_fields(obj)?;
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    // What can fail comes first, before anything is allocated.
    let max_tokens = get("max_tokens").and_then(Value::as_u64);
    // Anthropic's API requires it, so clients written for it always send it.
    if create && max_tokens.is_none() {
        return Err(bad("max_tokens", "is required."));
    }
    // Accepted, not forwarded: reasoning is each model's configuration (see the README).
    if let Some(t) = get("thinking") {
        if str_of(t, "type") == Some("enabled") && !t.get("budget_tokens").is_some_and(Value::is_u64) {
            return Err(bad("thinking.budget_tokens", "must be an integer when thinking is enabled."));
        }
    }
    let user = get("metadata").and_then(|m| m.get("user_id")).filter(|u| !u.is_null());
    if user.is_some_and(|u| !u.is_string()) {
        return Err(bad("metadata.user_id", "must be a string."));
    }
    let list = get("messages").and_then(Value::as_array).filter(|l| !l.is_empty());
    let list = list.ok_or_else(|| bad("messages", "is required and must hold at least one message."))?;
    let (mut tools, mut ignored_tools) = (Vec::new(), Vec::new());
    for (i, t) in blocks(get("tools")).enumerate() {
        tool(t, &mut tools, &mut ignored_tools).map_err(|why| bad(&format!("tools[{i}]"), why))?;
    }
    let (tool_choice, parallel_tool_calls) = match get("tool_choice") {
        Some(c) => decode_tool_choice(c, &tools, &ignored_tools)?,
        None => (None, None),
    };
    let mut messages = Vec::new();
    if let Some(s) = get("system") {
        messages.push(Message::new(Role::System, system_text(s).map_err(|w| bad("system", w))?));
    }
    for (i, m) in list.iter().enumerate() {
        decode_message(m, &mut messages).map_err(|(j, why)| {
            let at = match j {
                Some(j) => format!("messages[{i}].content[{j}]"),
                None => format!("messages[{i}]"),
            };
            bad(&at, why)
        })?;
    }
    let params = Params {
        temperature: get("temperature").and_then(Value::as_f64),
        top_p: get("top_p").and_then(Value::as_f64),
        top_k: get("top_k").and_then(Value::as_u64),
        // The cap on output, reasoning included: OpenAI's reasoning models take
        // only this name (the other providers read either).
        max_completion_tokens: max_tokens,
        // Checked to be strings (`check_fields`).
        stop: blocks(get("stop_sequences")).map(|s| s.as_str().unwrap_or_default().to_owned()).collect(),
        tools,
        tool_choice,
        parallel_tool_calls,
        user: user.and_then(Value::as_str).map(str::to_owned),
        prompt_cache: prompt_cache(obj),
        ..Params::default()
    };
    let flag = |k: &str| get("n1").and_then(|o| o.get(k)?.as_bool()).unwrap_or(false);
    Ok(Request {
        model: get("model").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned),
        stream: get("stream").and_then(Value::as_bool).unwrap_or(false),
        progress: flag("progress"),
        direct: flag("direct"),
        messages,
        params,
        ignored_tools,
        ..Request::default()
    })
}

/// Whether the client marked its prompt for caching (`cache_control` at the
/// top level, or on a tool, a system block or a message's content block), with
/// the top-level mark's lifetime, else the last block mark's: N-1 asks Anthropic
/// upstreams for its automatic caching (one mark at the end of the prompt), and
/// that last mark is the one nearest to it.
fn prompt_cache(obj: &Map<String, Value>) -> Option<PromptCache> {
    let ttl = |c: &Value| if str_of(c, "ttl") == Some("1h") { PromptCache::OneHour } else { PromptCache::FiveMinutes };
    if let Some(c) = obj.get("cache_control").filter(|c| c.is_object()) {
        return Some(ttl(c));
    }
    let contents = blocks(obj.get("messages")).flat_map(|m| blocks(m.get("content")));
    let marks = blocks(obj.get("tools")).chain(blocks(obj.get("system"))).chain(contents);
    marks.filter_map(|b| b.get("cache_control").filter(|c| c.is_object())).last().map(ttl)
}

/// The items of an array (none for anything else, or nothing).
fn blocks(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn check_fields(obj: &Map<String, Value>) -> Result<(), N1Error> {
    for &(name, kind, why) in FIELDS {
        let Some(v) = obj.get(name).filter(|v| !v.is_null()) else { continue };
        let ok = match kind {
            Kind::Str => v.is_string(),
            Kind::Bool => v.is_boolean(),
            Kind::Int(min) => v.as_i64().is_some_and(|i| i >= min),
            Kind::Unit => v.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)),
            Kind::Obj => v.is_object(),
            Kind::Arr => v.is_array(),
            Kind::Strs => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::StrOrArr => v.is_string() || v.is_array(),
            Kind::StrOrObj => v.is_string() || v.is_object(),
        };
        if !ok {
            return Err(bad(name, why));
        }
    }
    Ok(())
}

/// Appends a text, separated from what is there by a blank line.
fn append(acc: &mut String, text: &str) {
    if !acc.is_empty() {
        acc.push_str("\n\n");
    }
    acc.push_str(text);
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)?.as_str()
}

/// A system prompt: a string, or text blocks (their `cache_control` read by `prompt_cache`).
fn system_text(v: &Value) -> Result<String, Why> {
    if let Some(s) = v.as_str() {
        return Ok(s.to_owned());
    }
    let mut text = String::new();
    for b in v.as_array().ok_or("must be a string or an array of text blocks.")? {
        match (str_of(b, "type"), str_of(b, "text")) {
            (Some("text"), Some(t)) => append(&mut text, t),
            _ => return Err("must be a string or an array of text blocks ({\"type\": \"text\", \"text\": …})."),
        }
    }
    Ok(text)
}

/// One message of `messages` (a user turn may become several); on error, the
/// index of the content block at fault, if it is one.
fn decode_message(m: &Value, out: &mut Vec<Message>) -> Result<(), (Option<usize>, Why)> {
    let content = m.get("content").filter(|c| c.is_string() || c.is_array());
    let content = content.ok_or((None, "needs a `content`: a string or an array of content blocks."))?;
    match str_of(m, "role") {
        Some("user") => user(content, out),
        Some("assistant") => assistant(content, out),
        Some("system") => {
            let text = system_text(content).map_err(|_| (None, "is a system message whose `content` is neither a string nor text blocks."))?;
            out.push(Message::new(Role::System, text));
            Ok(())
        }
        _ => Err((None, "needs a `role`: `user`, `assistant` or `system`.")),
    }
}

const NO_TYPE: Why = "must be an object with a string `type`.";

/// A user turn: its tool results become tool messages (first, as Anthropic
/// orders them), the rest one user message.
fn user(content: &Value, out: &mut Vec<Message>) -> Result<(), (Option<usize>, Why)> {
    let Some(blocks) = content.as_array() else {
        out.push(Message::new(Role::User, content.as_str().unwrap_or_default()));
        return Ok(());
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let r = match str_of(b, "type") {
            Some("tool_result") => tool_result(b, &mut parts).map(|m| out.push(m)),
            Some(kind) => content_block(b, kind, &mut parts),
            None => Err(NO_TYPE),
        };
        r.map_err(|why| (Some(j), why))?;
    }
    if parts.is_empty() {
        return Ok(());
    }
    // Text only → one string (what every upstream takes); with images → parts.
    let content = if parts.iter().all(|p| p.text().is_some()) {
        let mut text = String::new();
        parts.iter().filter_map(Part::text).for_each(|t| append(&mut text, t));
        Content::Text(text)
    } else {
        Content::Parts(parts)
    };
    out.push(Message { content, ..Message::new(Role::User, "") });
    Ok(())
}

/// Text, images, documents and search results of a user turn (or of a tool
/// result); other blocks (thinking, server tool results, …) are dropped.
fn content_block(b: &Value, kind: &str, parts: &mut Vec<Part>) -> Result<(), Why> {
    let text = match kind {
        "text" => str_of(b, "text").ok_or("is a `text` block without a string `text`.")?.to_owned(),
        "image" => {
            parts.push(image(b)?);
            return Ok(());
        }
        "document" => document(b),
        "search_result" => {
            let mut text = String::new();
            for k in ["title", "source"] {
                append(&mut text, str_of(b, k).unwrap_or_default());
            }
            append(&mut text, &texts_of(b.get("content")));
            text
        }
        _ => return Ok(()),
    };
    parts.push(Part::Text(text));
    Ok(())
}

/// The text of a string, or of the text blocks of an array.
fn texts_of(v: Option<&Value>) -> String {
    let mut text = String::new();
    match v {
        Some(Value::String(s)) => text.push_str(s),
        Some(Value::Array(a)) => a.iter().filter(|b| str_of(b, "type") == Some("text")).filter_map(|b| str_of(b, "text")).for_each(|t| append(&mut text, t)),
        _ => {}
    }
    text
}

/// An image: base64 → a data URL, url → the URL (the forms providers take).
fn image(b: &Value) -> Result<Part, Why> {
    let src = b.get("source");
    let field = |k| src.and_then(|s| str_of(s, k));
    let url = match (field("type"), field("url"), field("media_type"), field("data")) {
        (Some("url"), Some(url), ..) => url.to_owned(),
        (Some("base64"), _, Some(media_type), Some(data)) => {
            let mut url = String::with_capacity(data.len() + 32);
            for piece in ["data:", media_type, ";base64,", data] {
                url.push_str(piece);
            }
            url
        }
        (Some("file"), ..) => return Err("is an `image` block with a `file` source, which N-1 cannot read (it has no access to Anthropic's Files API): send the image as `base64` or `url`."),
        _ => return Err("is an `image` block whose `source` is neither {\"type\": \"base64\", \"media_type\", \"data\"} nor {\"type\": \"url\", \"url\"}."),
    };
    Ok(Part::Image { url, detail: None })
}

/// A document's text (plain-text and content sources), after its title; other
/// sources (PDF, URL, file) cannot be passed on, which the text says.
fn document(b: &Value) -> String {
    let src = b.get("source");
    let text = match src.and_then(|s| str_of(s, "type")) {
        Some("text") => src.and_then(|s| str_of(s, "data")).unwrap_or_default().to_owned(),
        Some("content") => texts_of(src.and_then(|s| s.get("content"))),
        _ => return "[A document was attached that N-1 cannot pass on: only text documents are supported.]".to_owned(),
    };
    let mut out = str_of(b, "title").unwrap_or_default().to_owned();
    append(&mut out, &text);
    out
}

/// A `tool_result` block → a tool message; its images go to the user turn.
fn tool_result(b: &Value, parts: &mut Vec<Part>) -> Result<Message, Why> {
    let id = str_of(b, "tool_use_id").ok_or("is a `tool_result` block without a string `tool_use_id`.")?;
    let mut text = String::new();
    match b.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => text.push_str(s),
        Some(Value::Array(a)) => {
            let mut images = Vec::new();
            for c in a {
                let mut got = Vec::new();
                content_block(c, str_of(c, "type").ok_or(NO_TYPE)?, &mut got)?;
                for part in got {
                    match part {
                        Part::Text(t) => append(&mut text, &t),
                        other => images.push(other),
                    }
                }
            }
            if !images.is_empty() {
                let mut label = String::from("[Images returned by tool call ");
                label.push_str(id);
                label.push(']');
                parts.push(Part::Text(label));
                parts.append(&mut images);
            }
        }
        Some(_) => return Err("is a `tool_result` block whose `content` is neither a string nor an array of content blocks."),
    }
    match b.get("is_error") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => text.insert_str(0, "Error: "),
        Some(_) => return Err("is a `tool_result` block whose `is_error` is not a boolean."),
    }
    Ok(Message { tool_call_id: Some(id.to_owned()), ..Message::new(Role::Tool, text) })
}

/// An assistant turn: its text and tool calls (thinking and server tool blocks dropped).
fn assistant(content: &Value, out: &mut Vec<Message>) -> Result<(), (Option<usize>, Why)> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    match content {
        Value::Array(blocks) => {
            for (j, b) in blocks.iter().enumerate() {
                match (str_of(b, "type"), str_of(b, "text")) {
                    (Some("text"), Some(t)) => append(&mut text, t),
                    (Some("text"), None) => return Err((Some(j), "is a `text` block without a string `text`.")),
                    (Some("tool_use"), _) => {
                        let (Some(id), Some(name)) = (str_of(b, "id"), str_of(b, "name")) else {
                            return Err((Some(j), "is a `tool_use` block without a string `id` and `name`."));
                        };
                        let input = b.get("input").filter(|i| !i.is_null()).map_or_else(|| "{}".to_owned(), json::text);
                        tool_calls.push(ToolCall::function(id, name, input));
                    }
                    (None, _) => return Err((Some(j), NO_TYPE)),
                    _ => {}
                }
            }
        }
        s => text.push_str(s.as_str().unwrap_or_default()),
    }
    if text.is_empty() && tool_calls.is_empty() {
        return Ok(()); // only thinking: nothing to pass on
    }
    let content = if text.is_empty() { Content::None } else { Content::Text(text) };
    out.push(Message { content, tool_calls, ..Message::new(Role::Assistant, "") });
    Ok(())
}

/// A custom tool (no `type`, or `custom`) → a function tool; any other type is
/// a server tool N-1 cannot run: dropped, named in `ignored_tools`.
fn tool(t: &Value, tools: &mut Vec<Tool>, ignored: &mut Vec<String>) -> Result<(), Why> {
    let kind = match t.get("type") {
        None | Some(Value::Null) => "custom",
        Some(k) => k.as_str().ok_or("has a `type` that is not a string.")?,
    };
    let name = str_of(t, "name");
    if kind != "custom" {
        ignored.push(name.unwrap_or(kind).to_owned());
        return Ok(());
    }
    let (Some(name), Some(schema @ Value::Object(_))) = (name, t.get("input_schema")) else {
        return Err("is a custom tool without a string `name` and an `input_schema` object (a JSON schema).");
    };
    let description = match t.get("description") {
        None | Some(Value::Null) => None,
        Some(d) => Some(d.as_str().ok_or("has a `description` that is not a string.")?.to_owned()),
    };
    let strict = t.get("strict").and_then(Value::as_bool);
    tools.push(Tool::Function { name: name.to_owned(), description, parameters: Some(schema.clone()), strict });
    Ok(())
}

/// `tool_choice` → the internal choice and `parallel_tool_calls`. A choice that
/// forces a server tool cannot be honoured: a 400 naming it. Without function
/// tools there is nothing to choose (OpenAI refuses a choice without tools).
fn decode_tool_choice(c: &Value, tools: &[Tool], ignored: &[String]) -> Result<(Option<ToolChoice>, Option<bool>), N1Error> {
    let parallel = match c.get("disable_parallel_tool_use") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(false),
        Some(_) => return Err(bad("tool_choice.disable_parallel_tool_use", "must be a boolean.")),
    };
    let name = str_of(c, "name").unwrap_or_default();
    let forced = match str_of(c, "type") {
        Some("auto") => return Ok((Some(ToolChoice::Auto).filter(|_| !tools.is_empty()), parallel.filter(|_| !tools.is_empty()))),
        Some("none") => return Ok((Some(ToolChoice::None).filter(|_| !tools.is_empty()), None)),
        Some("any") if !tools.is_empty() => return Ok((Some(ToolChoice::Required), parallel)),
        Some("any") if ignored.is_empty() => return Ok((None, None)),
        Some("any") => ignored.join("`, `"),
        Some("tool") if ignored.iter().any(|n| n == name) => name.to_owned(),
        Some("tool") if tools.iter().any(|t| matches!(t, Tool::Function { name: n, .. } if n == name)) => {
            return Ok((Some(ToolChoice::Function(name.to_owned())), parallel))
        }
        Some("tool") => return Err(bad("tool_choice.name", "must name one of the custom tools in `tools`.")),
        _ => return Err(bad("tool_choice.type", "must be `auto`, `any`, `tool` or `none`.")),
    };
    Err(N1Error::InvalidRequest {
        message: format!("`tool_choice` forces `{forced}`: a server tool, which N-1 cannot run (server tools are dropped and listed in `n1.ignored_tools`)."),
        param: Some("tool_choice".into()),
        code: Some("server_tool_not_supported"),
    })
}

/// Tokens each image counts for in `count_tokens` (Anthropic's figure for an
/// image at its largest size, about 1.15 megapixels).
const IMAGE_TOKENS: u64 = 1_600;

/// `count_tokens`' estimate for a decoded request: characters / 4 (rounded up)
/// over the system prompt, the messages (tool calls and results included) and
/// the tool definitions, plus `IMAGE_TOKENS` per image. An estimate: N-1
/// has no tokenizer, and the ensemble's models each count differently.
pub fn count_tokens(req: &Request) -> u64 {
    let len = |s: &str| s.chars().count() as u64;
    let mut chars = 0;
    let mut images = 0;
    for m in &req.messages {
        if let Content::Parts(parts) = &m.content {
            images += parts.iter().filter(|p| matches!(p, Part::Image { .. })).count() as u64;
        }
        chars += len(&m.text());
        for c in &m.tool_calls {
            chars += len(&c.function.name) + len(&c.function.arguments);
        }
    }
    for t in &req.params.tools {
        if let Tool::Function { name, description, parameters, .. } = t {
            chars += len(name) + len(description.as_deref().unwrap_or_default());
            chars += parameters.as_ref().map_or(0, |p| len(&json::text(p)));
        }
    }
    chars.div_ceil(4) + images * IMAGE_TOKENS
}
