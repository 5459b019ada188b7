//! Relaying the summary model's SSE stream to the client, chunk in, chunk out:
//! each upstream event is rewritten to our `id`, `model` and `created`; usage is
//! captured (the client gets the sum over every call instead); the chunk that
//! carries `finish_reason` is held back so the `n1` metadata can ride on it.
//! A stream that ends without `finish_reason` or `[DONE]` is an error, never a
//! silent truncation.

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
    held: Option<Value>,
    finish_reason: Option<String>,
    done: bool,
    sent: bool,
    /// Secrets to scrub from upstream error text.
    secrets: Vec<String>,
}

impl Relay {
    pub fn new(ids: ReplyIds, secrets: Vec<String>) -> Self {
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

    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), RelayError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let mut v: Value = serde_json::from_str(data).map_err(|_| RelayError::Malformed("an event that is not JSON".into()))?;
        let Some(obj) = v.as_object_mut() else {
            return Err(RelayError::Malformed("an event that is not a JSON object".into()));
        };
        if let Some(err) = obj.get("error") {
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            return Err(RelayError::Upstream(response::summarize_error(&serde_json::json!({"error": err}).to_string(), &secrets)));
        }
        if let Some(u) = obj.remove("usage") {
            if let Some(u) = Usage::from_json(&u) {
                self.usage = Some(u);
            }
        }
        let choices = match obj.get("choices").and_then(Value::as_array) {
            Some(c) if !c.is_empty() => c,
            _ => return Ok(()), // a usage-only chunk: ours comes at the end
        };
        let finish = choices.iter().find_map(|c| c.get("finish_reason").and_then(Value::as_str)).map(str::to_owned);
        if finish.is_none() && choices.iter().all(is_empty_delta) {
            return Ok(()); // the upstream's own role chunk: ours went out first
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

    /// The end of a good stream: the finish chunk with `n1`, the usage chunk if
    /// asked for, `[DONE]`.
    pub fn tail(&mut self, out: &mut Vec<u8>, meta: &N1Meta, usage: Option<&Usage>) {
        let mut last = self
            .held
            .take()
            .unwrap_or_else(|| response::chunk(&self.ids, serde_json::json!({}), Some("stop")));
        last["n1"] = serde_json::to_value(meta).unwrap_or(Value::Null);
        sse::encode_data(out, &last.to_string());
        if let Some(u) = usage {
            sse::encode_data(out, &response::usage_chunk(&self.ids, u).to_string());
        }
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
    fn tool_call_deltas_pass_through() {
        let mut r = Relay::new(ids(), vec![]);
        let mut out = Vec::new();
        r.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n", &mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].contains("call_1"));
    }
}
