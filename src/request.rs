//! The inbound OpenAI chat completion request: validation, and the bodies we
//! send upstream. The client's JSON object is kept whole, so fields we do not
//! know (new OpenAI parameters, provider extensions) reach the models intact.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::config::ModelSpec;
use crate::error::N1Error;

/// Roles OpenAI accepts in `messages`.
const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

/// A validated request. `body` is the client's object as sent.
#[derive(Debug)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// `"n1": {"progress": true}`: panel progress events on the stream.
    pub progress: bool,
}

impl ChatRequest {
    pub fn messages(&self) -> &[Value] {
        // Validation guarantees an array.
        self.body["messages"].as_array().map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn temperature(&self) -> Option<&Value> {
        self.body.get("temperature").filter(|v| !v.is_null())
    }
}

pub fn parse_chat_request(bytes: &[u8]) -> Result<ChatRequest, N1Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| N1Error::InvalidRequest {
        message: format!("The request body is not valid JSON: {e}"),
        param: None,
        code: Some("invalid_json"),
    })?;
    let Value::Object(body) = value else {
        return Err(N1Error::invalid("The request body must be a JSON object.", None));
    };
    validate_fields(&body)?;
    validate_messages(body.get("messages"))?;

    let model = match body.get("model") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let progress = body.get("n1").and_then(|o| o.get("progress")).and_then(Value::as_bool).unwrap_or(false);
    Ok(ChatRequest { body, model, stream, include_usage, progress })
}

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

/// Known top-level fields and the JSON type each must have (null is always allowed:
/// OpenAI treats it as "not set").
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

fn validate_fields(body: &Map<String, Value>) -> Result<(), N1Error> {
    for &(name, kind) in FIELDS {
        let Some(v) = body.get(name) else { continue };
        if v.is_null() {
            continue;
        }
        let ok = match kind {
            Kind::Str => v.is_string(),
            Kind::Bool => v.is_boolean(),
            Kind::Int { min } => match v.as_i64() {
                Some(i) if i < min => {
                    return Err(N1Error::invalid(
                        format!("`{name}` must be at least {min}, got {i}."),
                        Some(name),
                    ))
                }
                Some(_) => true,
                None => false,
            },
            Kind::Num { min, max } => match v.as_f64() {
                Some(x) if x < min || x > max => {
                    return Err(N1Error::invalid(
                        format!("`{name}` must be between {min} and {max}, got {x}."),
                        Some(name),
                    ))
                }
                Some(_) => true,
                None => false,
            },
            Kind::Obj => v.is_object(),
            Kind::Arr => v.is_array(),
            Kind::StrOrArr => {
                v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            }
            Kind::StrOrObj => v.is_string() || v.is_object(),
        };
        if !ok {
            return Err(N1Error::invalid(
                format!("`{name}` must be {}.", type_name(kind)),
                Some(name),
            ));
        }
    }
    if let Some(n) = body.get("n").and_then(Value::as_i64) {
        if n > 1 {
            return Err(N1Error::InvalidRequest {
                message: "`n` > 1 is not supported: an ensemble produces one synthesized answer.".into(),
                param: Some("n".into()),
                code: Some("unsupported_value"),
            });
        }
    }
    if let Some(Value::Object(o)) = body.get("stream_options") {
        if o.get("include_usage").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
            return Err(N1Error::invalid(
                "`stream_options.include_usage` must be a boolean.",
                Some("stream_options.include_usage"),
            ));
        }
    }
    Ok(())
}

fn validate_messages(messages: Option<&Value>) -> Result<(), N1Error> {
    let messages = match messages {
        None | Some(Value::Null) => {
            return Err(N1Error::invalid("`messages` is required.", Some("messages")))
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(N1Error::invalid("`messages` must be an array.", Some("messages")))
        }
    };
    if messages.is_empty() {
        return Err(N1Error::invalid(
            "`messages` must contain at least one message.",
            Some("messages"),
        ));
    }
    for (i, m) in messages.iter().enumerate() {
        let p = |f: &str| format!("messages[{i}]{f}");
        let Value::Object(m) = m else {
            return Err(N1Error::invalid(format!("{} must be an object.", p("")), Some(&p(""))));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
            Some(Value::String(r)) => {
                return Err(N1Error::invalid(
                    format!("{} `{r}` is not a valid role; expected one of {}.", p(".role"), ROLES.join(", ")),
                    Some(&p(".role")),
                ))
            }
            _ => {
                return Err(N1Error::invalid(
                    format!("{} is required and must be a string.", p(".role")),
                    Some(&p(".role")),
                ))
            }
        };
        match m.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    if !part.get("type").is_some_and(Value::is_string) {
                        let q = p(&format!(".content[{j}]"));
                        return Err(N1Error::invalid(
                            format!("{q} must be an object with a string `type`."),
                            Some(&q),
                        ));
                    }
                }
            }
            // An assistant turn that only called tools carries no content.
            None | Some(Value::Null) if role == "assistant" => {}
            None | Some(Value::Null) => {
                return Err(N1Error::invalid(
                    format!("{} is required for role `{role}`.", p(".content")),
                    Some(&p(".content")),
                ))
            }
            Some(_) => {
                return Err(N1Error::invalid(
                    format!("{} must be a string or an array of content parts.", p(".content")),
                    Some(&p(".content")),
                ))
            }
        }
        if m.get("name").is_some_and(|n| !n.is_string() && !n.is_null()) {
            return Err(N1Error::invalid(format!("{} must be a string.", p(".name")), Some(&p(".name"))));
        }
    }
    Ok(())
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

pub fn check_limits(req: &ChatRequest, limits: &Limits) -> Result<(), N1Error> {
    let messages = req.messages();
    if messages.len() > limits.max_messages {
        return Err(N1Error::InvalidRequest {
            message: format!("Too many messages: {} (the limit is {}).", messages.len(), limits.max_messages),
            param: Some("messages".into()),
            code: Some("too_many_messages"),
        });
    }
    let mut chars = 0usize;
    for m in messages {
        chars += match m.get("content") {
            Some(Value::String(s)) => s.chars().count(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(|t| t.chars().count())
                .sum(),
            _ => 0,
        };
    }
    if chars > limits.max_chars {
        return Err(N1Error::InvalidRequest {
            message: format!("The messages hold {chars} characters of text; the limit is {}.", limits.max_chars),
            param: Some("messages".into()),
            code: Some("too_much_text"),
        });
    }
    Ok(())
}

/// Text of a message's content: the string, or the text parts of an array joined.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Whether any message carries an image part (vision routing).
pub fn has_images(messages: &[Value]) -> bool {
    messages.iter().any(|m| {
        m.get("content").and_then(Value::as_array).is_some_and(|parts| {
            parts.iter().any(|p| matches!(p.get("type").and_then(Value::as_str), Some("image_url" | "input_image" | "image")))
        })
    })
}

/// The conversation as the panel sees it: the panel answers in text and gets
/// no tool definitions, so tool calls and tool results become readable text
/// (many providers reject tool messages without tools). `None`: unchanged.
pub fn panel_messages(messages: &[Value]) -> Option<Vec<Value>> {
    let has_tools = messages.iter().any(|m| {
        matches!(m.get("role").and_then(Value::as_str), Some("tool" | "function"))
            || m.get("tool_calls").is_some_and(|t| !t.is_null())
            || m.get("function_call").is_some_and(|t| !t.is_null())
    });
    if !has_tools {
        return None;
    }
    let converted = messages
        .iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let text = m.get("content").map(content_text).unwrap_or_default();
            match role {
                "tool" | "function" => {
                    let id = m.get("tool_call_id").or_else(|| m.get("name")).and_then(Value::as_str).unwrap_or("?");
                    serde_json::json!({"role": "user", "content": format!("[Result of tool call {id}]\n{text}")})
                }
                "assistant" => {
                    let mut parts = Vec::new();
                    if !text.is_empty() {
                        parts.push(text);
                    }
                    let calls = m.get("tool_calls").and_then(Value::as_array).cloned().unwrap_or_default();
                    let legacy = m.get("function_call").filter(|f| !f.is_null()).map(|f| serde_json::json!({"function": f}));
                    for c in calls.iter().chain(legacy.iter()) {
                        let f = &c["function"];
                        let id = c.get("id").and_then(Value::as_str).unwrap_or("?");
                        parts.push(format!(
                            "[Called tool {} (call {id}) with arguments {}]",
                            f.get("name").and_then(Value::as_str).unwrap_or("?"),
                            f.get("arguments").and_then(Value::as_str).unwrap_or("{}")
                        ));
                    }
                    serde_json::json!({"role": "assistant", "content": parts.join("\n")})
                }
                _ => m.clone(),
            }
        })
        .collect();
    Some(converted)
}

/// `keep_history: false`: the client's system messages and its last user turn.
pub fn last_turn(messages: &[Value]) -> Vec<Value> {
    let last_user = messages.iter().rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    messages
        .iter()
        .enumerate()
        .filter(|(i, m)| {
            Some(*i) == last_user || matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer"))
        })
        .map(|(_, m)| m.clone())
        .collect()
}

/// Who an outbound body is for: the panel answers in text, so tool definitions
/// only go to the summary model.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Purpose {
    Panel,
    Summary,
}

/// The messages of an outbound body: the client's, or ours in front of theirs.
#[derive(Clone, Copy)]
pub enum Messages<'a> {
    Client(&'a [Value]),
    WithSystem { system: &'a str, rest: &'a [Value] },
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Messages::Client(m) => m.serialize(s),
            Messages::WithSystem { system, rest } => {
                let mut seq = s.serialize_seq(Some(rest.len() + 1))?;
                seq.serialize_element(&SystemMessage { role: "system", content: system })?;
                for m in *rest {
                    seq.serialize_element(m)?;
                }
                seq.end()
            }
        }
    }
}

#[derive(serde::Serialize)]
struct SystemMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// An upstream chat completion body that borrows everything from the client's
/// request: the client's fields pass through, except the ones we own; the
/// model's configured temperature and max_tokens fill in what the client did
/// not set, and its `extra_body` overrides.
pub struct UpstreamBody<'a> {
    pub client: &'a Map<String, Value>,
    pub model: &'a ModelSpec,
    pub messages: Messages<'a>,
    pub stream: bool,
    pub purpose: Purpose,
}

/// Fields we set ourselves, or that must not reach upstream.
const OWNED: &[&str] = &["model", "messages", "stream", "stream_options", "n", "n1"];
const SUMMARY_ONLY: &[&str] = &["tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"];

impl Serialize for UpstreamBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let set = |k: &str| self.client.get(k).is_some_and(|v| !v.is_null());
        let extra = &self.model.extra_body;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("model", &self.model.model)?;
        map.serialize_entry("messages", &self.messages)?;
        map.serialize_entry("stream", &self.stream)?;
        if self.stream {
            // Always ask for usage: the reply's usage is the sum over every call.
            map.serialize_entry("stream_options", &IncludeUsage { include_usage: true })?;
        }
        let client_temp = set("temperature");
        if let Some(t) = self.model.temperature.filter(|_| !client_temp && !extra.contains_key("temperature")) {
            map.serialize_entry("temperature", &t)?;
        }
        let client_max = set("max_tokens") || set("max_completion_tokens");
        if let Some(n) = self.model.max_tokens.filter(|_| !client_max && !extra.contains_key("max_tokens")) {
            map.serialize_entry("max_tokens", &n)?;
        }
        for (k, v) in extra {
            if !OWNED.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        for (k, v) in self.client {
            // A null from the client means "not set" (as OpenAI reads it): it must
            // neither reach the upstream nor shadow a configured value.
            if v.is_null()
                || OWNED.contains(&k.as_str())
                || extra.contains_key(k)
                || (self.purpose == Purpose::Panel && SUMMARY_ONLY.contains(&k.as_str()))
            {
                continue;
            }
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct IncludeUsage {
    include_usage: bool,
}

impl UpstreamBody<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serializing JSON values cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(model: &str, temperature: Option<f64>) -> ModelSpec {
        let cfg = json!({"ensembles": {"e": {"summary": {"endpoint": "https://x.test", "model": model, "temperature": temperature}}}});
        crate::config::parse_config(&cfg.to_string(), Default::default()).unwrap().ensembles.remove(0).summary.remove(0)
    }

    #[test]
    fn configured_max_tokens_and_extra_body() {
        let cfg = json!({"ensembles": {"e": {"summary": {"endpoint": "https://x.test", "model": "m", "max_tokens": 99,
            "extra_body": {"top_k": 5, "seed": 1, "model": "nope"}}}}});
        let m = crate::config::parse_config(&cfg.to_string(), Default::default()).unwrap().ensembles.remove(0).summary.remove(0);
        let r = parse(json!({"seed": 7, "messages": [{"role": "user", "content": "x"}]})).unwrap();
        let b = UpstreamBody { client: &r.body, model: &m, messages: Messages::Client(r.messages()), stream: false, purpose: Purpose::Panel };
        let v: Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(v["max_tokens"], 99);
        assert_eq!(v["top_k"], 5);
        assert_eq!(v["seed"], 1, "extra_body wins");
        assert_eq!(v["model"], "m", "extra_body cannot change what we own");
        let r = parse(json!({"max_completion_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).unwrap();
        let b = UpstreamBody { client: &r.body, model: &m, messages: Messages::Client(r.messages()), stream: false, purpose: Purpose::Panel };
        let v: Value = serde_json::from_str(&b.to_json()).unwrap();
        assert!(v.get("max_tokens").is_none());
        assert_eq!(v["max_completion_tokens"], 5);
    }

    #[test]
    fn client_nulls_mean_unset() {
        let cfg = json!({"ensembles": {"e": {"summary": {"endpoint": "https://x.test", "model": "m", "max_tokens": 99, "temperature": 0.2}}}});
        let m = crate::config::parse_config(&cfg.to_string(), Default::default()).unwrap().ensembles.remove(0).summary.remove(0);
        let r = parse(json!({"max_tokens": null, "temperature": null, "stop": null, "messages": [{"role": "user", "content": "x"}]})).unwrap();
        let text = UpstreamBody { client: &r.body, model: &m, messages: Messages::Client(r.messages()), stream: false, purpose: Purpose::Panel }.to_json();
        assert_eq!(text.matches("\"max_tokens\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"temperature\"").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["max_tokens"], 99);
        assert_eq!(v["temperature"], 0.2);
        assert!(v.get("stop").is_none());
    }

    #[test]
    fn tool_history_becomes_text_for_the_panel() {
        let msgs = vec![
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "12 C, rain"}),
        ];
        let p = panel_messages(&msgs).unwrap();
        assert_eq!(p[1], json!({"role": "assistant", "content": "[Called tool get_weather (call c1) with arguments {\"city\":\"Oslo\"}]"}));
        assert_eq!(p[2], json!({"role": "user", "content": "[Result of tool call c1]\n12 C, rain"}));
        assert!(panel_messages(&msgs[..1]).is_none());
    }

    #[test]
    fn last_turn_keeps_system_and_last_user_message() {
        let msgs = vec![
            json!({"role": "system", "content": "S"}),
            json!({"role": "user", "content": "a"}),
            json!({"role": "assistant", "content": "b"}),
            json!({"role": "user", "content": "c"}),
        ];
        let t = last_turn(&msgs);
        assert_eq!(t, vec![msgs[0].clone(), msgs[3].clone()]);
    }

    #[test]
    fn detects_images() {
        assert!(has_images(&[json!({"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]})]));
        assert!(!has_images(&[json!({"role": "user", "content": "x"})]));
    }

    fn parse(v: Value) -> Result<ChatRequest, N1Error> {
        parse_chat_request(v.to_string().as_bytes())
    }

    fn param_of(v: Value) -> String {
        match parse(v).unwrap_err() {
            N1Error::InvalidRequest { param, .. } => param.unwrap_or_default(),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn accepts_a_minimal_request() {
        let r = parse(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert!(r.model.is_none());
        assert!(!r.stream);
        assert_eq!(r.messages().len(), 1);
    }

    #[test]
    fn rejects_invalid_json_and_non_objects() {
        let e = parse_chat_request(b"{nope").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("not valid JSON"));
        assert!(parse_chat_request(b"[1]").is_err());
    }

    #[test]
    fn rejects_bad_messages() {
        assert_eq!(param_of(json!({})), "messages");
        assert_eq!(param_of(json!({"messages": []})), "messages");
        assert_eq!(param_of(json!({"messages": "hi"})), "messages");
        assert_eq!(param_of(json!({"messages": [1]})), "messages[0]");
        assert_eq!(param_of(json!({"messages": [{"content": "x"}]})), "messages[0].role");
        assert_eq!(param_of(json!({"messages": [{"role": "wizard", "content": "x"}]})), "messages[0].role");
        assert_eq!(param_of(json!({"messages": [{"role": "user", "content": 5}]})), "messages[0].content");
        assert_eq!(param_of(json!({"messages": [{"role": "user"}]})), "messages[0].content");
        assert_eq!(
            param_of(json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]})),
            "messages[0].content[0]"
        );
        // An assistant tool-call turn has no content.
        parse(json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": []}]})).unwrap();
    }

    #[test]
    fn rejects_wrong_types_of_known_fields() {
        let m = json!([{"role": "user", "content": "x"}]);
        for (field, bad) in [
            ("temperature", json!("hot")),
            ("temperature", json!(3)),
            ("max_tokens", json!(1.5)),
            ("max_tokens", json!(0)),
            ("stream", json!("yes")),
            ("stop", json!([1])),
            ("top_p", json!(2)),
            ("model", json!(7)),
            ("tools", json!({})),
            ("seed", json!("1")),
        ] {
            let mut body = json!({"messages": m});
            body[field] = bad;
            assert_eq!(param_of(body), field);
        }
    }

    #[test]
    fn n_above_one_is_refused() {
        let e = parse(json!({"n": 2, "messages": [{"role": "user", "content": "x"}]})).unwrap_err();
        assert_eq!(e.body()["error"]["code"], "unsupported_value");
        parse(json!({"n": 1, "messages": [{"role": "user", "content": "x"}]})).unwrap();
    }

    #[test]
    fn limits_on_messages_and_text() {
        let r = parse(json!({"messages": [{"role": "user", "content": "héllo"}, {"role": "user", "content": [{"type": "text", "text": "abc"}, {"type": "image_url", "image_url": {"url": "data:xxxxxxxxxxxx"}}]}]})).unwrap();
        check_limits(&r, &Limits { max_messages: 2, max_chars: 8 }).unwrap();
        let e = check_limits(&r, &Limits { max_messages: 1, max_chars: 100 }).unwrap_err();
        assert_eq!(e.body()["error"]["code"], "too_many_messages");
        let e = check_limits(&r, &Limits { max_messages: 5, max_chars: 7 }).unwrap_err();
        assert_eq!(e.body()["error"]["code"], "too_much_text");
    }

    #[test]
    fn nulls_mean_unset() {
        parse(json!({"temperature": null, "stop": null, "messages": [{"role": "user", "content": "x"}]})).unwrap();
    }

    #[test]
    fn upstream_body_keeps_client_fields_and_owns_ours() {
        let r = parse(json!({
            "model": "council", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 7, "seed": 3, "top_p": 0.5, "x_vendor": {"a": 1},
            "tools": [{"type": "function"}], "tool_choice": "auto"
        }))
        .unwrap();
        let m = spec("gpt-x", Some(0.3));
        let body = |purpose, stream| -> Value {
            let b = UpstreamBody { client: &r.body, model: &m, messages: Messages::Client(r.messages()), stream, purpose };
            serde_json::from_str(&b.to_json()).unwrap()
        };
        let panel = body(Purpose::Panel, false);
        assert_eq!(panel["model"], "gpt-x");
        assert_eq!(panel["stream"], false);
        assert!(panel.get("stream_options").is_none());
        assert_eq!(panel["max_tokens"], 7);
        assert_eq!(panel["seed"], 3);
        assert_eq!(panel["x_vendor"]["a"], 1);
        assert_eq!(panel["temperature"], 0.3);
        assert!(panel.get("tools").is_none());
        let summary = body(Purpose::Summary, true);
        assert_eq!(summary["stream_options"]["include_usage"], true);
        assert_eq!(summary["tool_choice"], "auto");
    }

    #[test]
    fn client_temperature_wins_over_configured() {
        let r = parse(json!({"temperature": 1.1, "messages": [{"role": "user", "content": "x"}]})).unwrap();
        let m = spec("m", Some(0.2));
        let b = UpstreamBody { client: &r.body, model: &m, messages: Messages::WithSystem { system: "S", rest: r.messages() }, stream: false, purpose: Purpose::Summary };
        let v: Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(v["temperature"], 1.1);
        assert_eq!(v["messages"][0], json!({"role": "system", "content": "S"}));
        assert_eq!(v["messages"][1]["content"], "x");
        assert_eq!(v.as_object().unwrap().keys().filter(|k| *k == "temperature").count(), 1);
    }
}
