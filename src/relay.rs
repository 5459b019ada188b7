//! Relaying the summary model's SSE stream to the client, chunk in, chunk out:
//! each upstream event is rewritten to our `id`, `model` and `created`; usage is
//! captured (the client gets the sum over every call instead); the chunk that
//! carries `finish_reason` is held back so the `n1` metadata can ride on it.
//! A stream that ends without `finish_reason` or `[DONE]` is an error, never a
//! silent truncation.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::response::{self, N1Meta, ReplyIds};
use crate::sse::{self, Event, Parser};
use crate::usage::Usage;

#[derive(Debug, PartialEq)]
pub enum RelayError {
    /// An event that is not JSON, or a line too long to be SSE.
    Malformed(String),
    /// The upstream sent an error event mid-stream.
    Upstream(String),
    /// The stream ended before `finish_reason` or `[DONE]`.
    Truncated,
}

impl RelayError {
    pub fn message(&self) -> String {
        match self {
            RelayError::Malformed(m) => format!("The summary model's stream was malformed: {m}."),
            RelayError::Upstream(m) => format!("The summary model reported an error mid-stream: {m}"),
            RelayError::Truncated => "The summary model's stream ended before the answer was complete.".into(),
        }
    }
}

pub struct Relay {
    ids: ReplyIds,
    parser: Parser,
    events: Vec<Event>,
    usage: Option<Usage>,
    /// The chunk with `finish_reason`, rewritten (JSON text) but for an `n1` member of
    /// the upstream's (kept aside), waiting for our `n1` metadata.
    held: Option<(Vec<u8>, Option<String>)>,
    finish_reason: Option<String>,
    done: bool,
    sent: bool,
    /// Secrets to scrub from upstream error text.
    secrets: Vec<String>,
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…`: the start of every
    /// rewritten chunk, serialized once.
    prefix: Vec<u8>,
    /// Top-level members of the current event (reused between events).
    members: Vec<Member>,
}

impl Relay {
    pub fn new(ids: ReplyIds, secrets: Vec<String>) -> Self {
        let mut prefix = Vec::with_capacity(96 + ids.id.len() + ids.model.len());
        prefix.extend_from_slice(b"{\"id\":");
        json_string(&mut prefix, &ids.id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.extend_from_slice(ids.created.to_string().as_bytes());
        prefix.extend_from_slice(b",\"model\":");
        json_string(&mut prefix, &ids.model);
        Relay {
            ids,
            parser: Parser::new(),
            events: Vec::new(),
            usage: None,
            held: None,
            finish_reason: None,
            done: false,
            sent: false,
            secrets,
            prefix,
            members: Vec::new(),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether any chunk of the answer has been written out.
    pub fn sent_content(&self) -> bool {
        self.sent
    }

    /// Feed one upstream read; whatever is ready for the client is appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), RelayError> {
        self.parser
            .push(bytes, &mut self.events)
            .map_err(|_| RelayError::Malformed("a line without end".into()))?;
        self.drain(out)
    }

    /// The upstream stream ended.
    pub fn end(&mut self, out: &mut Vec<u8>) -> Result<(), RelayError> {
        self.parser.finish(&mut self.events);
        self.drain(out)?;
        if self.done || self.finish_reason.is_some() {
            Ok(())
        } else {
            Err(RelayError::Truncated)
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> Result<(), RelayError> {
        let events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for ev in &events {
            if self.done {
                break; // nothing after [DONE] counts
            }
            if let Err(e) = self.event(&ev.data, out) {
                result = Err(e);
                break;
            }
        }
        self.events = events;
        self.events.clear();
        result
    }

    /// One upstream event, chunk in, chunk out. The event is read in one pass that
    /// checks it is JSON (exactly as parsing it into a `Value` would) and picks out
    /// only what the relay decides on (`error`, `usage`, the choices' `finish_reason`
    /// and whether their deltas are empty); the chunk sent on is the upstream's own
    /// text with our `id`/`object`/`created`/`model` in front and `usage` and
    /// `system_fingerprint` left out: no tree is built, nothing is re-serialized.
    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), RelayError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let probe: Probe = serde_json::from_str(data).map_err(|_| RelayError::Malformed("an event that is not JSON".into()))?;
        if !probe.object {
            return Err(RelayError::Malformed("an event that is not a JSON object".into()));
        }
        if let Some(err) = probe.error {
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            return Err(RelayError::Upstream(response::summarize_error(&serde_json::json!({"error": err}).to_string(), &secrets)));
        }
        if let Some(u) = probe.usage {
            if let Some(u) = Usage::from_json(&u) {
                self.usage = Some(u);
            }
        }
        let Choices::Array { len, finish, all_empty } = probe.choices else {
            return Ok(()); // a usage-only chunk: ours comes at the end
        };
        if len == 0 {
            return Ok(());
        }
        if finish.is_none() && all_empty {
            return Ok(()); // the upstream's own role chunk: ours went out first
        }
        self.sent = true;
        if let Some(f) = finish {
            let mut chunk = Vec::with_capacity(self.prefix.len() + data.len() + 2);
            let their_n1 = self.rewrite(data, true, &mut chunk);
            self.finish_reason = Some(f);
            if let Some(prev) = self.held.replace((chunk, their_n1)) {
                release(out, prev);
            }
        } else {
            if let Some(prev) = self.held.take() {
                release(out, prev);
            }
            // The common case: written straight into `out`.
            out.extend_from_slice(b"data: ");
            self.rewrite(data, false, out);
            out.extend_from_slice(b"\n\n");
        }
        Ok(())
    }

    /// `data` (a JSON object, already checked) with our identity in front and the
    /// members we own or drop left out. A member that appears twice counts once, as
    /// its last value (as a parsed object would have it). For a finish chunk
    /// (`set_aside_n1`), an `n1` member is left out and returned (raw JSON): ours
    /// replaces it if this chunk ends the stream.
    fn rewrite(&mut self, data: &str, set_aside_n1: bool, chunk: &mut Vec<u8>) -> Option<String> {
        self.members.clear();
        if scan_members(data, &mut self.members).is_none() {
            // Not expected for text serde_json accepted; fall back to the tree.
            return self.rewrite_slow(data, set_aside_n1, chunk);
        }
        chunk.extend_from_slice(&self.prefix);
        let m = &self.members;
        let mut n1 = None;
        for (i, &(ks, ke, vs, ve)) in m.iter().enumerate() {
            let key = &data[ks..ke];
            if OWNED_MEMBERS.iter().any(|own| key_is(key, own)) {
                continue;
            }
            if m[i + 1..].iter().any(|&(ks2, ke2, _, _)| same_key(key, &data[ks2..ke2])) {
                continue;
            }
            if set_aside_n1 && key_is(key, "n1") {
                n1 = Some(data[vs..ve].to_owned());
                continue;
            }
            chunk.push(b',');
            chunk.extend_from_slice(key.as_bytes());
            chunk.push(b':');
            chunk.extend_from_slice(&data.as_bytes()[vs..ve]);
        }
        chunk.push(b'}');
        n1
    }

    fn rewrite_slow(&self, data: &str, set_aside_n1: bool, chunk: &mut Vec<u8>) -> Option<String> {
        let mut v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        let mut n1 = None;
        if let Some(obj) = v.as_object_mut() {
            for k in OWNED_MEMBERS {
                obj.remove(*k);
            }
            if set_aside_n1 {
                n1 = obj.remove("n1").map(|v| v.to_string());
            }
            obj.insert("id".into(), self.ids.id.as_str().into());
            obj.insert("object".into(), "chat.completion.chunk".into());
            obj.insert("created".into(), self.ids.created.into());
            obj.insert("model".into(), self.ids.model.as_str().into());
        }
        chunk.extend_from_slice(v.to_string().as_bytes());
        n1
    }

    /// The end of a good stream: the finish chunk with `n1`, the usage chunk if
    /// asked for, `[DONE]`.
    pub fn tail(&mut self, out: &mut Vec<u8>, meta: &N1Meta, usage: Option<&Usage>) {
        let n1 = serde_json::to_string(meta).unwrap_or_else(|_| "null".into());
        match self.held.take() {
            Some((mut last, _theirs)) => {
                // `last` is an object with at least our own members: add `n1` before its `}`.
                last.pop();
                last.extend_from_slice(b",\"n1\":");
                last.extend_from_slice(n1.as_bytes());
                last.push(b'}');
                frame(out, &last);
            }
            None => {
                let mut last = response::chunk(&self.ids, serde_json::json!({}), Some("stop"));
                last["n1"] = serde_json::to_value(meta).unwrap_or(Value::Null);
                sse::encode_data(out, &last.to_string());
            }
        }
        if let Some(u) = usage {
            sse::encode_data(out, &response::usage_chunk(&self.ids, u).to_string());
        }
        out.extend_from_slice(sse::DONE);
    }
}

/// Members the relay sets itself (`id`, `object`, `created`, `model`) or drops.
const OWNED_MEMBERS: &[&str] = &["id", "object", "created", "model", "system_fingerprint", "usage"];

/// A held finish chunk that another one replaced goes out as the upstream sent it.
fn release(out: &mut Vec<u8>, (mut chunk, their_n1): (Vec<u8>, Option<String>)) {
    if let Some(n1) = their_n1 {
        chunk.pop();
        chunk.extend_from_slice(b",\"n1\":");
        chunk.extend_from_slice(n1.as_bytes());
        chunk.push(b'}');
    }
    frame(out, &chunk);
}

/// `data: <json>\n\n`.
fn frame(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a str cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Whether a raw JSON key (with its quotes) is `name`.
fn key_is(raw: &str, name: &str) -> bool {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains('\\') {
        return inner == name;
    }
    serde_json::from_str::<String>(raw).is_ok_and(|k| k == name)
}

fn same_key(a: &str, b: &str) -> bool {
    if !a.contains('\\') && !b.contains('\\') {
        return a == b;
    }
    match (serde_json::from_str::<String>(a), serde_json::from_str::<String>(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Byte ranges of a member: raw key (with quotes), raw value.
type Member = (usize, usize, usize, usize);

/// The top-level members of a JSON object's text. `None` if the text is not
/// shaped like one (never for text serde_json accepted as an object).
fn scan_members(s: &str, out: &mut Vec<Member>) -> Option<()> {
    let b = s.as_bytes();
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some(());
    }
    loop {
        let ks = i;
        if *b.get(i)? != b'"' {
            return None;
        }
        i = skip_string(b, i)?;
        let ke = i;
        i = skip_ws(b, i);
        if *b.get(i)? != b':' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let vs = i;
        i = skip_value(b, i)?;
        out.push((ks, ke, vs, i));
        i = skip_ws(b, i);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(()),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `b[i]` is `"`: the index after the closing quote.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The index after the value starting at `b[i]`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while !matches!(b.get(i), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

// ---- The one-pass reading of an event -------------------------------------------
//
// Each type below reads one JSON value through `deserialize_any`, so every string,
// number and nesting level is checked exactly as when parsing into a `Value`, but
// only the few facts the relay needs are kept.

/// What the relay needs from an event.
#[derive(Default)]
struct Probe {
    object: bool,
    /// `error`, unless absent or null.
    error: Option<Value>,
    usage: Option<Value>,
    choices: Choices,
}

#[derive(Default)]
enum Choices {
    /// Absent, or not an array.
    #[default]
    NotArray,
    Array {
        len: usize,
        /// The first string `finish_reason` among the choices.
        finish: Option<String>,
        /// Every choice's delta is empty (see `DeltaProbe`).
        all_empty: bool,
    },
}

/// Consumes (and so checks) any value.
struct Any;

/// What kind of value it was, for the checks that need no more.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Null,
    EmptyStr,
    Other,
}

/// A string's value, or `None` for any other value.
struct MaybeStr(Option<String>);

struct ChoiceProbe {
    finish: Option<String>,
    empty_delta: bool,
}

/// `delta` is empty: not an object, or only `role`, an empty or null `content`,
/// and null members.
struct DeltaProbe(bool);

/// The scalar `visit_*` methods, all giving `$v`.
macro_rules! scalars {
    ($v:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
}

/// `visit_seq`/`visit_map` that consume every element and give `$v`.
macro_rules! containers {
    ($v:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Any>()?.is_some() {}
            Ok($v)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<Any, Any>()?.is_some() {}
            Ok($v)
        }
    };
}

macro_rules! deserialize_any {
    ($t:ty, $visitor:ident) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any($visitor)
            }
        }
    };
}

struct AnyVisitor;
impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    scalars!(Any);
    containers!(Any);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Any, E> {
        Ok(Any)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Any, E> {
        Ok(Any)
    }
}
deserialize_any!(Any, AnyVisitor);

struct KindVisitor;
impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    scalars!(Kind::Other);
    containers!(Kind::Other);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Kind, E> {
        Ok(if s.is_empty() { Kind::EmptyStr } else { Kind::Other })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
}
deserialize_any!(Kind, KindVisitor);

struct MaybeStrVisitor;
impl<'de> Visitor<'de> for MaybeStrVisitor {
    type Value = MaybeStr;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    scalars!(MaybeStr(None));
    containers!(MaybeStr(None));
    fn visit_str<E: de::Error>(self, s: &str) -> Result<MaybeStr, E> {
        Ok(MaybeStr(Some(s.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<MaybeStr, E> {
        Ok(MaybeStr(None))
    }
}
deserialize_any!(MaybeStr, MaybeStrVisitor);

/// A member name, keeping only what the probes tell apart.
enum Key {
    Error,
    Usage,
    Choices,
    FinishReason,
    Delta,
    Role,
    Content,
    Other(String),
}

struct KeyVisitor;
impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(match s {
            "error" => Key::Error,
            "usage" => Key::Usage,
            "choices" => Key::Choices,
            "finish_reason" => Key::FinishReason,
            "delta" => Key::Delta,
            "role" => Key::Role,
            "content" => Key::Content,
            other => Key::Other(other.to_owned()),
        })
    }
}
impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct ProbeVisitor;
impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    scalars!(Probe::default());
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Probe, E> {
        Ok(Probe::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Probe, A::Error> {
        while seq.next_element::<Any>()?.is_some() {}
        Ok(Probe::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut p = Probe { object: true, ..Probe::default() };
        // A member given twice counts as its last value, as in a parsed object.
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                // Some providers send `"error": null` on every chunk: only a value is an error.
                Key::Error => p.error = Some(map.next_value::<Value>()?).filter(|e| !e.is_null()),
                Key::Usage => p.usage = Some(map.next_value()?),
                Key::Choices => p.choices = map.next_value()?,
                _ => {
                    map.next_value::<Any>()?;
                }
            }
        }
        Ok(p)
    }
}
deserialize_any!(Probe, ProbeVisitor);

struct ChoicesVisitor;
impl<'de> Visitor<'de> for ChoicesVisitor {
    type Value = Choices;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    scalars!(Choices::NotArray);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Choices, E> {
        Ok(Choices::NotArray)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Choices, E> {
        Ok(Choices::NotArray)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Choices, A::Error> {
        while map.next_entry::<Any, Any>()?.is_some() {}
        Ok(Choices::NotArray)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices, A::Error> {
        let (mut len, mut finish, mut all_empty) = (0, None, true);
        while let Some(c) = seq.next_element::<ChoiceProbe>()? {
            len += 1;
            if finish.is_none() {
                finish = c.finish;
            }
            all_empty &= c.empty_delta;
        }
        Ok(Choices::Array { len, finish, all_empty })
    }
}
deserialize_any!(Choices, ChoicesVisitor);

struct ChoiceVisitor;
impl<'de> Visitor<'de> for ChoiceVisitor {
    type Value = ChoiceProbe;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    // A choice that is not an object has no finish_reason and no delta (an empty one).
    scalars!(ChoiceProbe { finish: None, empty_delta: true });
    fn visit_str<E: de::Error>(self, _: &str) -> Result<ChoiceProbe, E> {
        Ok(ChoiceProbe { finish: None, empty_delta: true })
    }
    fn visit_unit<E: de::Error>(self) -> Result<ChoiceProbe, E> {
        Ok(ChoiceProbe { finish: None, empty_delta: true })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChoiceProbe, A::Error> {
        while seq.next_element::<Any>()?.is_some() {}
        Ok(ChoiceProbe { finish: None, empty_delta: true })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChoiceProbe, A::Error> {
        let mut c = ChoiceProbe { finish: None, empty_delta: true };
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::FinishReason => c.finish = map.next_value::<MaybeStr>()?.0,
                Key::Delta => c.empty_delta = map.next_value::<DeltaProbe>()?.0,
                _ => {
                    map.next_value::<Any>()?;
                }
            }
        }
        Ok(c)
    }
}
deserialize_any!(ChoiceProbe, ChoiceVisitor);

struct DeltaVisitor;
impl<'de> Visitor<'de> for DeltaVisitor {
    type Value = DeltaProbe;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    // A delta that is not an object counts as empty.
    scalars!(DeltaProbe(true));
    fn visit_str<E: de::Error>(self, _: &str) -> Result<DeltaProbe, E> {
        Ok(DeltaProbe(true))
    }
    fn visit_unit<E: de::Error>(self) -> Result<DeltaProbe, E> {
        Ok(DeltaProbe(true))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DeltaProbe, A::Error> {
        while seq.next_element::<Any>()?.is_some() {}
        Ok(DeltaProbe(true))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeltaProbe, A::Error> {
        // The last value of each member decides; other members are rare (tool calls,
        // refusals), so they are tracked by name only when they occur.
        let mut content_empty = true;
        let mut others: Vec<(String, bool)> = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Role => {
                    map.next_value::<Any>()?;
                }
                Key::Content => content_empty = matches!(map.next_value::<Kind>()?, Kind::Null | Kind::EmptyStr),
                key => {
                    let name = match key {
                        Key::Other(n) => n,
                        Key::Error => "error".into(),
                        Key::Usage => "usage".into(),
                        Key::Choices => "choices".into(),
                        Key::FinishReason => "finish_reason".into(),
                        Key::Delta => "delta".into(),
                        Key::Role | Key::Content => unreachable!(),
                    };
                    let null = map.next_value::<Kind>()? == Kind::Null;
                    match others.iter_mut().find(|(n, _)| *n == name) {
                        Some(o) => o.1 = null,
                        None => others.push((name, null)),
                    }
                }
            }
        }
        Ok(DeltaProbe(content_empty && others.iter().all(|(_, null)| *null)))
    }
}
deserialize_any!(DeltaProbe, DeltaVisitor);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::SummaryReport;

    fn ids() -> ReplyIds {
        ReplyIds { id: "chatcmpl-ours".into(), created: 42, model: "council".into() }
    }

    fn meta() -> N1Meta {
        N1Meta {
            ensemble: "council".into(),
            panel: vec![],
            panel_ok: 2,
            panel_total: 3,
            panel_end: "all",
            layers: None,
            summary: SummaryReport { model: "s".into(), status: "ok", latency_ms: 1, usage: None, failed: vec![] },
            degraded: true,
        }
    }

    fn upstream(parts: &[&str], finish: bool, done: bool) -> String {
        let mut s = String::from("data: {\"id\":\"up\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
        for p in parts {
            s += &format!("data: {{\"id\":\"up\",\"model\":\"m\",\"created\":1,\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{p}\"}},\"finish_reason\":null}}]}}\n\n");
        }
        if finish {
            s += "data: {\"id\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
            s += "data: {\"id\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
        }
        if done {
            s += "data: [DONE]\n\n";
        }
        s
    }

    fn events(out: &[u8]) -> Vec<String> {
        let mut p = Parser::new();
        let mut ev = Vec::new();
        p.push(out, &mut ev).unwrap();
        ev.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn rewrites_ids_and_holds_finish_chunk_for_metadata() {
        let mut r = Relay::new(ids(), vec![]);
        let mut out = Vec::new();
        let src = upstream(&["Hel", "lo"], true, true);
        // Byte-at-a-time reads give the same result as one read.
        for b in src.as_bytes().chunks(3) {
            r.push(b, &mut out).unwrap();
        }
        r.end(&mut out).unwrap();
        assert_eq!(r.usage().unwrap().total_tokens, 10);
        let u = Usage { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
        r.tail(&mut out, &meta(), Some(&u));
        let ev = events(&out);
        assert_eq!(ev.len(), 5, "{ev:?}"); // 2 content, finish+n1, usage, DONE
        let c0: Value = serde_json::from_str(&ev[0]).unwrap();
        assert_eq!(c0["id"], "chatcmpl-ours");
        assert_eq!(c0["model"], "council");
        assert_eq!(c0["created"], 42);
        assert_eq!(c0["choices"][0]["delta"]["content"], "Hel");
        let fin: Value = serde_json::from_str(&ev[2]).unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "stop");
        assert_eq!(fin["n1"]["panel_ok"], 2);
        let usage: Value = serde_json::from_str(&ev[3]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 2);
        assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
        assert_eq!(ev[4], "[DONE]");
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut r = Relay::new(ids(), vec![]);
        let mut out = Vec::new();
        r.push(upstream(&["a"], false, false).as_bytes(), &mut out).unwrap();
        assert_eq!(r.end(&mut out), Err(RelayError::Truncated));
        // The content that did arrive was relayed.
        assert_eq!(events(&out).len(), 1);
    }

    #[test]
    fn finish_without_done_is_complete() {
        let mut r = Relay::new(ids(), vec![]);
        let mut out = Vec::new();
        r.push(upstream(&["a"], true, false).as_bytes(), &mut out).unwrap();
        assert!(r.end(&mut out).is_ok());
    }

    #[test]
    fn garbage_and_error_events_are_errors() {
        let mut r = Relay::new(ids(), vec![]);
        assert!(matches!(r.push(b"data: ###\n\n", &mut Vec::new()), Err(RelayError::Malformed(_))));
        let mut r = Relay::new(ids(), vec!["sk-live-123".into()]);
        let e = r.push(b"data: {\"error\":{\"message\":\"bad key sk-live-123\"}}\n\n", &mut Vec::new()).unwrap_err();
        match e {
            RelayError::Upstream(m) => assert!(!m.contains("sk-live-123") && m.contains("bad key")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_null_error_member_is_no_error() {
        let mut r = Relay::new(ids(), vec![]);
        let mut out = Vec::new();
        let src = upstream(&["a"], true, true).replace("\"choices\"", "\"error\":null,\"choices\"");
        r.push(src.as_bytes(), &mut out).unwrap();
        assert!(r.end(&mut out).is_ok());
        assert!(String::from_utf8(out).unwrap().contains("\"content\":\"a\""));
    }

    #[test]
    fn tool_call_deltas_pass_through() {
        let mut r = Relay::new(ids(), vec![]);
        let mut out = Vec::new();
        r.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n", &mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].contains("call_1"));
    }

    /// The relay as it was before events were read in one pass (parse into a `Value`,
    /// rewrite, re-serialize), kept to check that the new one behaves the same.
    mod legacy {
        use super::super::*;

        pub struct Old {
            pub ids: ReplyIds,
            pub usage: Option<Usage>,
            pub held: Option<Value>,
            pub finish_reason: Option<String>,
            pub done: bool,
            pub sent: bool,
        }

        impl Old {
            pub fn new(ids: ReplyIds) -> Self {
                Old { ids, usage: None, held: None, finish_reason: None, done: false, sent: false }
            }

            pub fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), RelayError> {
                if data.trim() == "[DONE]" {
                    self.done = true;
                    return Ok(());
                }
                let mut v: Value = serde_json::from_str(data).map_err(|_| RelayError::Malformed("an event that is not JSON".into()))?;
                let Some(obj) = v.as_object_mut() else {
                    return Err(RelayError::Malformed("an event that is not a JSON object".into()));
                };
                if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
                    return Err(RelayError::Upstream(response::summarize_error(&serde_json::json!({"error": err}).to_string(), &[])));
                }
                if let Some(u) = obj.remove("usage") {
                    if let Some(u) = Usage::from_json(&u) {
                        self.usage = Some(u);
                    }
                }
                let choices = match obj.get("choices").and_then(Value::as_array) {
                    Some(c) if !c.is_empty() => c,
                    _ => return Ok(()),
                };
                let finish = choices.iter().find_map(|c| c.get("finish_reason").and_then(Value::as_str)).map(str::to_owned);
                if finish.is_none() && choices.iter().all(is_empty_delta) {
                    return Ok(());
                }
                obj.insert("id".into(), self.ids.id.as_str().into());
                obj.insert("object".into(), "chat.completion.chunk".into());
                obj.insert("created".into(), self.ids.created.into());
                obj.insert("model".into(), self.ids.model.as_str().into());
                obj.remove("system_fingerprint");
                self.sent = true;
                if let Some(f) = finish {
                    self.finish_reason = Some(f);
                    if let Some(prev) = self.held.replace(v) {
                        sse::encode_data(out, &prev.to_string());
                    }
                } else {
                    if let Some(prev) = self.held.take() {
                        sse::encode_data(out, &prev.to_string());
                    }
                    sse::encode_data(out, &v.to_string());
                }
                Ok(())
            }

            pub fn tail(&mut self, out: &mut Vec<u8>, meta: &N1Meta) {
                let mut last = self.held.take().unwrap_or_else(|| response::chunk(&self.ids, serde_json::json!({}), Some("stop")));
                last["n1"] = serde_json::to_value(meta).unwrap_or(Value::Null);
                sse::encode_data(out, &last.to_string());
                out.extend_from_slice(sse::DONE);
            }
        }

        fn is_empty_delta(choice: &Value) -> bool {
            match choice.get("delta").and_then(Value::as_object) {
                None => true,
                Some(d) => d.iter().all(|(k, v)| match k.as_str() {
                    "role" => true,
                    "content" => v.is_null() || v.as_str() == Some(""),
                    _ => v.is_null(),
                }),
            }
        }
    }

    /// Events covering the shapes the relay decides on, and odd ones.
    const CORPUS: &[&str] = &[
        r#"{"id":"up","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"up","model":"m","created":1,"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"lo \"quoted\" \\ \n\t é 世界 🎉 \u00e9 \ud83c\udf89 \/"},"finish_reason":null}]}"#,
        r#"  { "choices" : [ { "index" : 0 , "delta" : { "content" : "spaced" } , "finish_reason" : null } ] , "x" : [ 1 , { "a" : "}" } ] }  "#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        r#"{"choices":[],"usage":null}"#,
        r#"{"usage":{"prompt_tokens":"x"}}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"refusal":null,"content":null,"role":"assistant"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"refusal":"no"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"a","content":""}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"","content":"b"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"x":1,"x":null}}]}"#,
        r#"{"choices":[{"index":0,"delta":"text"}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"c"},"finish_reason":7}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":7}]}"#,
        r#"{"choices":[{"index":0,"finish_reason":"stop","finish_reason":null,"delta":{}}]}"#,
        r#"{"choices":[1,"s",null,[1],{"delta":{"content":"d"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"choices":{"0":{"delta":{"content":"x"}}}}"#,
        r#"{"choices":"nope"}"#,
        r#"{"choices":[{"delta":{"content":"dup"}}],"choices":[]}"#,
        r#"{"choices":[],"choices":[{"delta":{"content":"dup2"}}],"id":"a","id":"b","zz":1,"zz":2}"#,
        r#"{"\u0069d":"escaped-key","ch\u006fices":[{"delta":{"content":"esc"}}],"n1":{"x":1}}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"n1":"upstream's","extra":{"deep":[[[{"k":"v"}]]]}}"#,
        r#"{"choices":[{"delta":{"content":"num"}}],"n":[1.0,-0,1e2,1E-7,12345678901234567890,0.1000,-3.5e+3]}"#,
        r#"{"choices":[{"delta":{"content":"lone"}}],"s":"\ud800"}"#,
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
        r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#,
        r#"{"choices":[{"delta":{"content":"x"}}],"error":"late"}"#,
        "[1,2]",
        "\"str\"",
        "42",
        "null",
        "{not json",
        "{\"a\":1} trailing",
        "{\"a\":1,}",
        "",
        "[DONE]",
        " [DONE] ",
        "{}",
    ];

    fn meta_value(out: &[u8]) -> Vec<Value> {
        events(out).iter().map(|e| if e == "[DONE]" { Value::String(e.clone()) } else { serde_json::from_str(e).unwrap() }).collect()
    }

    /// Every sequence of up to 3 corpus events, and long random ones: the new relay
    /// emits the same JSON values, errors, usage and state as the old one.
    #[test]
    fn same_behaviour_as_the_value_based_relay() {
        let mut seqs: Vec<Vec<&str>> = Vec::new();
        for a in CORPUS {
            seqs.push(vec![a]);
            for b in CORPUS {
                seqs.push(vec![a, b]);
                for c in CORPUS.iter().step_by(5) {
                    seqs.push(vec![a, b, c]);
                }
            }
        }
        let mut x: u64 = 0x9E3779B97F4A7C15;
        for _ in 0..2000 {
            let n = 1 + (x % 12) as usize;
            let mut s = Vec::new();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(CORPUS[(x % CORPUS.len() as u64) as usize]);
            }
            seqs.push(s);
        }
        for seq in &seqs {
            let mut new = Relay::new(ids(), vec![]);
            let mut old = legacy::Old::new(ids());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut ra = Ok(());
            for ev in seq {
                if new.done {
                    break;
                }
                ra = new.event(ev, &mut a);
                assert_eq!(ra, old.event(ev, &mut b), "{seq:?}");
                if ra.is_err() {
                    break;
                }
            }
            assert_eq!(meta_value(&a), meta_value(&b), "{seq:?}\nnew: {}\nold: {}", String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
            assert_eq!(new.usage, old.usage, "{seq:?}");
            assert_eq!(new.finish_reason, old.finish_reason, "{seq:?}");
            assert_eq!((new.done, new.sent), (old.done, old.sent), "{seq:?}");
            if ra.is_ok() {
                new.tail(&mut a, &meta(), None);
                old.tail(&mut b, &meta());
                assert_eq!(meta_value(&a), meta_value(&b), "{seq:?}\nnew: {}\nold: {}", String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
            }
        }
    }

    /// `cargo test --release relay_speed -- --ignored --nocapture`: ns per event, new
    /// relay vs the old one, on a 4096-chunk stream read 16 KB at a time.
    #[test]
    #[ignore]
    fn relay_speed() {
        let text = "the quick brown fox jumps over the lazy dog while light scatters in the sky ".repeat(2);
        let mut src = String::new();
        for k in 0..4096 {
            let piece = &text[k % 8..k % 8 + 64];
            src += &format!("data: {{\"id\":\"mock-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"finish_reason\":null}}]}}\n\n");
        }
        src += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let runs = 30;
        let per_event = |t: std::time::Instant| t.elapsed().as_nanos() as f64 / (runs * 4098) as f64;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            let mut r = Relay::new(ids(), vec![]);
            let mut out = Vec::new();
            for c in src.as_bytes().chunks(16384) {
                r.push(c, &mut out).unwrap();
            }
            r.end(&mut out).unwrap();
            std::hint::black_box(out);
        }
        let new = per_event(t);
        let t = std::time::Instant::now();
        for _ in 0..runs {
            let mut p = Parser::new();
            let mut ev = Vec::new();
            let mut r = legacy::Old::new(ids());
            let mut out = Vec::new();
            for c in src.as_bytes().chunks(16384) {
                p.push(c, &mut ev).unwrap();
                for e in ev.drain(..) {
                    r.event(&e.data, &mut out).unwrap();
                }
            }
            std::hint::black_box(out);
        }
        eprintln!("relay: {new:.0} ns/event (the Value-based relay: {:.0})", per_event(t));
    }
}
