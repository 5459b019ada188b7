//! Responses API requests → the internal request. `input` (a string or a list
//! of items: messages, function calls and their outputs) becomes the
//! conversation, `instructions` a system message in front of it; function,
//! custom and namespace tools become function tools; hosted tools N-1 cannot
//! run are dropped and named in `n1.ignored_tools`. Fields that only shape the
//! response object are kept to be echoed in it.

use serde_json::{json, Map, Value};

use crate::core::dialects::chat::{decode_part, parse_json};
use crate::core::error::N1Error;
use crate::core::json::{self, object};
use crate::core::request::{Content, Message, Params, Part, Request, Role, Tool, ToolCall, ToolChoice};

/// Fields of the request echoed in the response object.
pub const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
    "service_tier",
];

/// Echo keys of N-1's own (in the echo map, never in the response object).
pub const NAMESPACES: &str = "n1:namespaces";
pub const CUSTOM_TOOLS: &str = "n1:custom_tools";

fn bad(param: &str, what: &str) -> N1Error {
    N1Error::invalid(format!("`{param}` {what}"), Some(param))
}

fn kind_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

pub fn decode(bytes: &[u8]) -> Result<Request, N1Error> {
    let Value::Object(mut body) = parse_json(bytes)? else {
        return Err(N1Error::invalid("The request body must be a JSON object.", None));
    };
    body.retain(|_, v| !v.is_null());
    check_types(&body)?;
    let mut req = Request::default();
    req.model = body.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_owned);
    req.stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let flag = |k: &str| body.get("n1").and_then(|n| n.get(k)).and_then(Value::as_bool).unwrap_or(false);
    req.progress = flag("progress");
    req.direct = flag("direct");
    // A stream's final event carries the usage: no separate usage chunk to ask for.
    req.include_usage = true;
    req.previous = body.get("previous_response_id").and_then(Value::as_str).map(str::to_owned);
    req.store = body.get("store").and_then(Value::as_bool).unwrap_or(true);
    for k in ECHOED {
        if let Some(v) = body.get(*k) {
            req.echo.insert((*k).to_owned(), v.clone());
        }
    }

    if let Some(Value::String(i)) = body.remove("instructions") {
        req.messages.push(Message::new(Role::System, i));
    }
    match body.remove("input") {
        None => {}
        Some(Value::String(s)) => req.messages.push(Message::new(Role::User, s)),
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                input_item(item, i, &mut req.messages)?;
            }
        }
        Some(_) => return Err(bad("input", "must be a string or an array of input items.")),
    }
    if req.messages.iter().all(|m| m.role.is_system()) && req.previous.is_none() {
        return Err(bad("input", "is required: there is nothing to answer."));
    }

    let mut p = Params {
        temperature: body.get("temperature").and_then(Value::as_f64),
        top_p: body.get("top_p").and_then(Value::as_f64),
        max_completion_tokens: body.get("max_output_tokens").and_then(Value::as_u64),
        parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool),
        user: body.get("user").and_then(Value::as_str).map(str::to_owned),
        reasoning_effort: body.get("reasoning").and_then(|r| r.get("effort")).and_then(Value::as_str).map(str::to_owned),
        ..Params::default()
    };
    match body.get("text").and_then(|t| t.get("format")).and_then(kind_of) {
        Some("json_object") => p.response_format = Some(json!({"type": "json_object"})),
        Some("json_schema") => {
            let mut f = body.get("text").and_then(|t| t.get("format")).cloned().unwrap_or_default();
            if let Some(f) = f.as_object_mut() {
                f.remove("type");
            }
            p.response_format = Some(object([("type", "json_schema".into()), ("json_schema", f)]));
        }
        _ => {}
    }
    // Chat Completions parameters with the same meaning, forwarded to providers that take them.
    for k in ["safety_identifier", "prompt_cache_key", "service_tier"] {
        if let Some(v) = body.get(k) {
            p.extra.insert(k.to_owned(), v.clone());
        }
    }
    if let Some(v) = body.get("text").and_then(|t| t.get("verbosity")) {
        p.extra.insert("verbosity".into(), v.clone());
    }
    if let Some(Value::Array(tools)) = body.remove("tools") {
        for (i, t) in tools.into_iter().enumerate() {
            tool(t, i, &mut p.tools, &mut req)?;
        }
    }
    p.tool_choice = body.remove("tool_choice").map(tool_choice).transpose()?;
    req.params = p;
    Ok(req)
}

/// Types of the fields whose value N-1 reads (a 400 names the field).
fn check_types(body: &Map<String, Value>) -> Result<(), N1Error> {
    let checks: &[(&str, fn(&Value) -> bool, &str)] = &[
        ("model", Value::is_string, "must be a string."),
        ("instructions", Value::is_string, "must be a string."),
        ("stream", Value::is_boolean, "must be a boolean."),
        ("store", Value::is_boolean, "must be a boolean."),
        ("parallel_tool_calls", Value::is_boolean, "must be a boolean."),
        ("previous_response_id", Value::is_string, "must be a string."),
        ("tools", Value::is_array, "must be an array."),
        ("text", Value::is_object, "must be an object."),
        ("reasoning", Value::is_object, "must be an object."),
        ("metadata", Value::is_object, "must be an object."),
        ("user", Value::is_string, "must be a string."),
        ("max_output_tokens", |v| v.as_u64().is_some_and(|n| n >= 1), "must be an integer of at least 1."),
        ("temperature", |v| v.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)), "must be a number between 0 and 2."),
        ("top_p", |v| v.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)), "must be a number between 0 and 1."),
        ("tool_choice", |v| v.is_string() || v.is_object(), "must be a string or an object."),
        ("n1", Value::is_object, "must be an object."),
    ];
    for (k, ok, what) in checks {
        if body.get(*k).is_some_and(|v| !ok(v)) {
            return Err(bad(k, what));
        }
    }
    Ok(())
}

/// The text of a `function_call_output`'s `output` (a string, or content parts).
fn output_text(v: Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
        Some(other) => json::text(&other),
        None => String::new(),
    }
}

fn input_item(item: Value, i: usize, out: &mut Vec<Message>) -> Result<(), N1Error> {
    let at = format!("input[{i}]");
    let Value::Object(mut item) = item else { return Err(bad(&at, "must be an object.")) };
    let kind = item.get("type").and_then(Value::as_str).unwrap_or(if item.contains_key("role") { "message" } else { "" }).to_owned();
    let mut string = |k: &str| match item.remove(k) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(bad(&format!("{at}.{k}"), "must be a string.")),
    };
    match kind.as_str() {
        "message" => {
            let role = match string("role")?.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "system" => Role::System,
                "developer" => Role::Developer,
                _ => return Err(bad(&format!("{at}.role"), "must be one of user, assistant, system, developer.")),
            };
            let content = match item.remove("content") {
                Some(Value::String(s)) => Content::Text(s),
                Some(Value::Array(parts)) => Content::Parts(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(j, p)| part(p).ok_or_else(|| bad(&format!("{at}.content[{j}]"), "must be an object with a string `type`.")))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(bad(&format!("{at}.content"), "must be a string or an array of content parts.")),
            };
            out.push(Message { content, ..Message::new(role, "") });
        }
        "function_call" | "custom_tool_call" => {
            let call_id = string("call_id")?;
            let name = string("name")?;
            let arguments = if kind == "function_call" { string("arguments")? } else { json::text(&object([("input", string("input")?.into())])) };
            let call = ToolCall::function(call_id, name, arguments);
            // Calls follow the assistant turn that made them (Chat Completions' shape).
            match out.last_mut() {
                Some(m) if m.role == Role::Assistant => m.tool_calls.push(call),
                _ => out.push(Message { content: Content::None, tool_calls: vec![call], ..Message::new(Role::Assistant, "") }),
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let call_id = string("call_id")?;
            let text = output_text(item.remove("output"));
            out.push(Message { tool_call_id: Some(call_id), ..Message::new(Role::Tool, text) });
        }
        // Reasoning items, references to stored items, hosted tools' calls: nothing a panel can use.
        "" => return Err(bad(&format!("{at}.type"), "is required.")),
        _ => {}
    }
    Ok(())
}

/// A content part: the Responses API's input and output parts.
fn part(p: Value) -> Option<Part> {
    match kind_of(&p)? {
        "refusal" => Some(Part::Text(p.get("refusal").and_then(Value::as_str).unwrap_or("").to_owned())),
        // Chat Completions' form of a file part.
        "input_file" => {
            let mut file = p.as_object()?.clone();
            file.remove("type");
            Some(Part::Other(object([("type", "file".into()), ("file", Value::Object(file))])))
        }
        _ => decode_part(p),
    }
}

/// Hosted tool types, and what forcing one says.
fn tool(t: Value, i: usize, tools: &mut Vec<Tool>, req: &mut Request) -> Result<(), N1Error> {
    let at = format!("tools[{i}]");
    let name = |t: &Value| t.get("name").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| bad(&format!("{at}.name"), "must be a string."));
    match kind_of(&t) {
        Some("function") => tools.push(Tool::Function {
            name: name(&t)?,
            description: t.get("description").and_then(Value::as_str).map(str::to_owned),
            parameters: t.get("parameters").filter(|p| !p.is_null()).cloned(),
            strict: t.get("strict").and_then(Value::as_bool),
        }),
        // A free-form tool: a function with one string argument, answered as a custom tool call.
        Some("custom") => {
            let n = name(&t)?;
            let list = req.echo.entry(CUSTOM_TOOLS).or_insert_with(|| json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(n.clone().into());
            }
            tools.push(Tool::Function {
                name: n,
                description: t.get("description").and_then(Value::as_str).map(str::to_owned),
                parameters: Some(json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]})),
                strict: None,
            });
        }
        // Its function tools, flattened; calls name the namespace again.
        Some("namespace") => {
            let ns = name(&t)?;
            for (j, inner) in t.get("tools").and_then(Value::as_array).cloned().unwrap_or_default().into_iter().enumerate() {
                let before = tools.len();
                tool(inner, j, tools, req).map_err(|_| bad(&format!("{at}.tools[{j}]"), "must be a function or custom tool."))?;
                for t in &tools[before..] {
                    if let Tool::Function { name, .. } = t {
                        let map = req.echo.entry(NAMESPACES).or_insert_with(|| json!({}));
                        if let Some(m) = map.as_object_mut() {
                            m.insert(name.clone(), ns.clone().into());
                        }
                    }
                }
            }
        }
        Some(hosted) => req.ignored_tools.push(hosted.to_owned()),
        None => return Err(bad(&format!("{at}.type"), "must be a string.")),
    }
    Ok(())
}

fn tool_choice(v: Value) -> Result<ToolChoice, N1Error> {
    match v.as_str() {
        Some("auto") => return Ok(ToolChoice::Auto),
        Some("none") => return Ok(ToolChoice::None),
        Some("required") => return Ok(ToolChoice::Required),
        Some(_) => return Err(bad("tool_choice", "must be auto, none, required or an object.")),
        None => {}
    }
    match kind_of(&v) {
        Some("function" | "custom") => match v.get("name").and_then(Value::as_str) {
            Some(n) => Ok(ToolChoice::Function(n.to_owned())),
            None => Err(bad("tool_choice.name", "must be a string.")),
        },
        Some("allowed_tools") => Ok(if v.get("mode").and_then(Value::as_str) == Some("required") { ToolChoice::Required } else { ToolChoice::Auto }),
        Some(hosted) => Err(N1Error::InvalidRequest {
            message: format!("`tool_choice` forces the hosted tool `{hosted}`, which N-1 cannot run: only function and custom tools reach the models."),
            param: Some("tool_choice".into()),
            code: Some("unsupported_tool"),
        }),
        None => Err(bad("tool_choice.type", "must be a string.")),
    }
}
