//! Chat Completions requests → the internal request. Every known field is
//! checked for its JSON type and range (a 400 names the field); fields N-1 does
//! not know are kept in `extra` maps and forwarded untouched.

use serde_json::{Map, Value};

use crate::core::error::N1Error;
use crate::core::json;
use crate::core::request::{Content, Message, Params, Part, Request, Role, Tool, ToolCall, ToolChoice};

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int { min: i64 },
    Num { min: f64, max: f64 },
    Obj,
    Arr,
    StrOrArr,
    StrOrObj,
}

/// Known top-level fields and the JSON type each must have (null is always
/// allowed: OpenAI reads it as "not set").
const FIELDS: &[(&str, Kind)] = &[
    ("model", Kind::Str),
    ("stream", Kind::Bool),
    ("stream_options", Kind::Obj),
    ("n", Kind::Int { min: 1 }),
    ("temperature", Kind::Num { min: 0.0, max: 2.0 }),
    ("top_p", Kind::Num { min: 0.0, max: 1.0 }),
    ("max_tokens", Kind::Int { min: 1 }),
    ("max_completion_tokens", Kind::Int { min: 1 }),
    ("stop", Kind::StrOrArr),
    ("seed", Kind::Int { min: i64::MIN }),
    ("presence_penalty", Kind::Num { min: -2.0, max: 2.0 }),
    ("frequency_penalty", Kind::Num { min: -2.0, max: 2.0 }),
    ("response_format", Kind::Obj),
    ("user", Kind::Str),
    ("logit_bias", Kind::Obj),
    ("logprobs", Kind::Bool),
    ("top_logprobs", Kind::Int { min: 0 }),
    ("tools", Kind::Arr),
    ("tool_choice", Kind::StrOrObj),
    ("parallel_tool_calls", Kind::Bool),
    ("metadata", Kind::Obj),
    ("store", Kind::Bool),
    ("reasoning_effort", Kind::Str),
    // N-1's own options; never forwarded upstream.
    ("n1", Kind::Obj),
];

fn type_name(k: Kind) -> &'static str {
    match k {
        Kind::Str => "a string",
        Kind::Bool => "a boolean",
        Kind::Int { .. } => "an integer",
        Kind::Num { .. } => "a number",
        Kind::Obj => "an object",
        Kind::Arr => "an array",
        Kind::StrOrArr => "a string or an array of strings",
        Kind::StrOrObj => "a string or an object",
    }
}

/// A number as the client wrote it (no float formatting code in the build).
fn num(v: &Value) -> String {
    json::text(v)
}

pub fn decode(bytes: &[u8]) -> Result<Request, N1Error> {
    let value = parse_json(bytes)?;
    let Value::Object(mut body) = value else {
        return Err(N1Error::invalid("The request body must be a JSON object.", None));
    };
    check_fields(&body)?;
    // A null means "not set", as OpenAI reads it.
    body.retain(|_, v| !v.is_null());
    let messages = decode_messages(body.remove("messages"))?;

    let mut take = |k: &str| body.remove(k);
    let model = take("model").and_then(into_string).filter(|s| !s.is_empty());
    let stream = take("stream").and_then(|v| v.as_bool()).unwrap_or(false);
    let include_usage = take("stream_options").and_then(|o| o.get("include_usage")?.as_bool()).unwrap_or(false);
    let n1 = take("n1");
    let flag = |k: &str| n1.as_ref().and_then(|o| o.get(k)?.as_bool()).unwrap_or(false);
    let (progress, direct) = (flag("progress"), flag("direct"));
    take("n"); // only 1 is accepted: one answer is what an ensemble gives
    let params = Params {
        temperature: take("temperature").and_then(|v| v.as_f64()),
        top_p: take("top_p").and_then(|v| v.as_f64()),
        // A chat client's `top_k` stays in `extra` and is forwarded as it came.
        top_k: None,
        max_tokens: take("max_tokens").and_then(|v| v.as_u64()),
        max_completion_tokens: take("max_completion_tokens").and_then(|v| v.as_u64()),
        stop: match take("stop") {
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(a)) => a.into_iter().filter_map(into_string).collect(),
            _ => Vec::new(),
        },
        seed: take("seed").and_then(|v| v.as_i64()),
        tools: match take("tools") {
            Some(Value::Array(a)) => a.into_iter().enumerate().map(|(i, t)| decode_tool(t, i)).collect::<Result<_, _>>()?,
            _ => Vec::new(),
        },
        tool_choice: take("tool_choice").map(decode_tool_choice),
        parallel_tool_calls: take("parallel_tool_calls").and_then(|v| v.as_bool()),
        response_format: take("response_format"),
        reasoning_effort: take("reasoning_effort").and_then(into_string),
        user: take("user").and_then(into_string),
        // Chat clients have no cache marks of their own (OpenAI caches by itself).
        prompt_cache: None,
        extra: body,
    };
    Ok(Request { model, messages, params, stream, include_usage, progress, direct, ..Request::default() })
}

/// The body as JSON: parsed from `str` (one serde_json reader in the build).
pub fn parse_json(bytes: &[u8]) -> Result<Value, N1Error> {
    let invalid = |why: String| N1Error::InvalidRequest {
        message: format!("The request body is not valid JSON: {why}"),
        param: None,
        code: Some("invalid_json"),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8".into()))?;
    serde_json::from_str(text).map_err(|e| invalid(e.to_string()))
}

fn into_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn check_fields(body: &Map<String, Value>) -> Result<(), N1Error> {
    for &(name, kind) in FIELDS {
        let Some(v) = body.get(name).filter(|v| !v.is_null()) else { continue };
        let ok = match kind {
            Kind::Str => v.is_string(),
            Kind::Bool => v.is_boolean(),
            Kind::Int { min } => match v.as_i64() {
                Some(i) if i < min => {
                    return Err(N1Error::invalid(format!("`{name}` must be at least {min}, got {i}."), Some(name)))
                }
                Some(_) => true,
                None => false,
            },
            Kind::Num { min, max } => match v.as_f64() {
                Some(x) if x < min || x > max => {
                    let (lo, hi) = (num(&Value::from(min)), num(&Value::from(max)));
                    return Err(N1Error::invalid(format!("`{name}` must be between {lo} and {hi}, got {}.", num(v)), Some(name)));
                }
                Some(_) => true,
                None => false,
            },
            Kind::Obj => v.is_object(),
            Kind::Arr => v.is_array(),
            Kind::StrOrArr => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Kind::StrOrObj => v.is_string() || v.is_object(),
        };
        if !ok {
            return Err(N1Error::invalid(format!("`{name}` must be {}.", type_name(kind)), Some(name)));
        }
    }
    if body.get("n").and_then(Value::as_i64).is_some_and(|n| n > 1) {
        return Err(N1Error::InvalidRequest {
            message: "`n` > 1 is not supported: an ensemble produces one synthesized answer.".into(),
            param: Some("n".into()),
            code: Some("unsupported_value"),
        });
    }
    if let Some(Value::Object(o)) = body.get("stream_options") {
        if o.get("include_usage").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
            return Err(N1Error::invalid("`stream_options.include_usage` must be a boolean.", Some("stream_options.include_usage")));
        }
    }
    Ok(())
}

pub fn decode_messages(messages: Option<Value>) -> Result<Vec<Message>, N1Error> {
    let messages = match messages {
        None => return Err(N1Error::invalid("`messages` is required.", Some("messages"))),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(N1Error::invalid("`messages` must be an array.", Some("messages"))),
    };
    if messages.is_empty() {
        return Err(N1Error::invalid("`messages` must contain at least one message.", Some("messages")));
    }
    messages.into_iter().enumerate().map(|(i, m)| decode_message(m, i)).collect()
}

fn decode_message(m: Value, i: usize) -> Result<Message, N1Error> {
    let p = |f: &str| format!("messages[{i}]{f}");
    let bad = |f: &str, what: &str| N1Error::invalid(format!("{} {what}", p(f)), Some(&p(f)));
    let Value::Object(mut m) = m else { return Err(bad("", "must be an object.")) };
    let role = match m.remove("role") {
        Some(Value::String(r)) => match Role::ALL.iter().find(|(n, _)| *n == r) {
            Some((_, role)) => *role,
            None => {
                let valid: Vec<&str> = Role::ALL.iter().map(|(n, _)| *n).collect();
                return Err(bad(".role", &format!("`{r}` is not a valid role; expected one of {}.", valid.join(", "))));
            }
        },
        _ => return Err(bad(".role", "is required and must be a string.")),
    };
    let content = match m.remove("content") {
        Some(Value::String(s)) => Content::Text(s),
        Some(Value::Array(parts)) => Content::Parts(
            parts
                .into_iter()
                .enumerate()
                .map(|(j, part)| decode_part(part).ok_or_else(|| bad(&format!(".content[{j}]"), "must be an object with a string `type`.")))
                .collect::<Result<_, _>>()?,
        ),
        // An assistant turn that only called tools carries no content.
        None | Some(Value::Null) if role == Role::Assistant => Content::None,
        None | Some(Value::Null) => return Err(bad(".content", &format!("is required for role `{}`.", role.as_str()))),
        Some(_) => return Err(bad(".content", "must be a string or an array of content parts.")),
    };
    let name = match m.remove("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n),
        Some(_) => return Err(bad(".name", "must be a string.")),
    };
    let tool_calls = match m.remove("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls
            .into_iter()
            .enumerate()
            .map(|(j, c)| decode_tool_call(c).ok_or_else(|| bad(&format!(".tool_calls[{j}]"), "must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}.")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(".tool_calls", "must be an array.")),
    };
    let tool_call_id = match m.remove("tool_call_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => return Err(bad(".tool_call_id", "must be a string.")),
    };
    Ok(Message { role, content, name, tool_calls, tool_call_id, extra: m })
}

/// A content part; `None` when it is not an object with a string `type`.
pub fn decode_part(part: Value) -> Option<Part> {
    let kind = part.get("type")?.as_str()?;
    let text = || part.get("text").and_then(Value::as_str).map(str::to_owned);
    let url = |field: &str| match part.get(field)? {
        Value::String(u) => Some(u.clone()),
        v => v.get("url")?.as_str().map(str::to_owned),
    };
    Some(match kind {
        "text" | "input_text" | "output_text" => match text() {
            Some(t) => Part::Text(t),
            None => Part::Other(part),
        },
        "image_url" | "input_image" => match url("image_url") {
            Some(url) => {
                let detail = part.get("detail").or_else(|| part.get("image_url")?.get("detail")).and_then(Value::as_str).map(str::to_owned);
                Part::Image { url, detail }
            }
            None => Part::Other(part),
        },
        _ => Part::Other(part),
    })
}

fn decode_tool_call(c: Value) -> Option<ToolCall> {
    let f = c.get("function")?;
    let arguments = match f.get("arguments") {
        Some(Value::String(a)) => a.clone(),
        None | Some(Value::Null) => "{}".to_owned(),
        Some(other) => json::text(other),
    };
    Some(ToolCall::function(c.get("id")?.as_str()?, f.get("name")?.as_str()?, arguments))
}

fn decode_tool(t: Value, i: usize) -> Result<Tool, N1Error> {
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return Ok(Tool::Other(t));
    }
    let Some(Value::Object(mut f)) = t.get("function").cloned() else {
        return Err(N1Error::invalid(format!("`tools[{i}].function` must be an object."), Some(&format!("tools[{i}].function"))));
    };
    let Some(Value::String(name)) = f.remove("name") else {
        return Err(N1Error::invalid(format!("`tools[{i}].function.name` must be a string."), Some(&format!("tools[{i}].function.name"))));
    };
    Ok(Tool::Function {
        name,
        description: f.remove("description").and_then(into_string),
        parameters: f.remove("parameters").filter(|p| !p.is_null()),
        strict: f.remove("strict").and_then(|v| v.as_bool()),
    })
}

pub fn decode_tool_choice(v: Value) -> ToolChoice {
    match v.as_str() {
        Some("auto") => return ToolChoice::Auto,
        Some("none") => return ToolChoice::None,
        Some("required") => return ToolChoice::Required,
        _ => {}
    }
    let name = v.get("function").and_then(|f| f.get("name")).or_else(|| v.get("name")).and_then(Value::as_str);
    match (v.get("type").and_then(Value::as_str), name) {
        (Some("function"), Some(n)) => ToolChoice::Function(n.to_owned()),
        _ => ToolChoice::Other(v),
    }
}
