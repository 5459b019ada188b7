//! Costs through the real ensemble flow: a runtime with a `Meter` and scripted
//! models, both output modes, the chat dialect's encoder in front.

use super::*;
use crate::core::config::{parse_config, ConfigOptions, Ensemble};
use crate::core::cost::{End, Meter};
use crate::core::dialects::chat::{self, ChatStream};
use crate::core::dialects::ReplyIds;
use crate::core::error::FailureKind;
use futures::executor::block_on;
use serde_json::{json, Value};
use std::cell::Cell;
use std::collections::HashMap;

#[derive(Clone)]
enum Reply {
    /// An answer reporting this usage (`None`: no usage object).
    Usage(Option<(u64, u64)>),
    Status(u16),
    /// Never answers.
    Hang,
    /// A stream of these events' data (`[DONE]` not added).
    Stream(Vec<&'static str>),
}

struct Rt {
    replies: HashMap<&'static str, Reply>,
    meter: Meter,
    clock: Cell<f64>,
    secrets: Secrets,
}

type Body = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>>>>;

impl Rt {
    fn new(replies: &[(&'static str, Reply)]) -> Rt {
        Rt { replies: replies.iter().cloned().collect(), meter: Meter::default(), clock: Cell::new(0.0), secrets: Secrets::default() }
    }
    fn reply(&self, m: &ModelSpec) -> Reply {
        self.clock.set(self.clock.get() + 10.0);
        self.replies.get(m.model.as_str()).cloned().unwrap_or(Reply::Usage(Some((10, 5))))
    }
}

impl Rt {
    /// Every call is under way before any answers (as fetches are); refusals come first.
    async fn all_under_way(&self, m: &ModelSpec) {
        let mut yielded = matches!(self.replies.get(m.model.as_str()), Some(Reply::Status(_)));
        futures::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
    }
}

impl Runtime for Rt {
    type Body = Body;

    async fn complete(&self, m: &ModelSpec, _body: &str, _t: u64) -> Result<String, Failure> {
        self.all_under_way(m).await;
        match self.reply(m) {
            Reply::Usage(u) => {
                let mut r = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "four"}, "finish_reason": "stop"}]});
                if let Some((p, c)) = u {
                    r["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
                }
                Ok(r.to_string())
            }
            Reply::Status(s) => Err(Failure::new(&m.model, Some(s), FailureKind::Error, "refused")),
            Reply::Hang | Reply::Stream(_) => futures::future::pending().await,
        }
    }

    async fn open_stream(&self, m: &ModelSpec, _body: &str, _t: u64) -> Result<Body, Failure> {
        self.all_under_way(m).await;
        let events = match self.reply(m) {
            Reply::Stream(events) => events.iter().map(|e| e.to_string()).collect(),
            Reply::Usage(u) => {
                let mut events = vec![json!({"choices": [{"index": 0, "delta": {"content": "four"}, "finish_reason": "stop"}]}).to_string()];
                if let Some((p, c)) = u {
                    events.push(json!({"choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}).to_string());
                }
                events.push("[DONE]".to_owned());
                events
            }
            Reply::Status(s) => return Err(Failure::new(&m.model, Some(s), FailureKind::Error, "refused")),
            Reply::Hang => return futures::future::pending().await,
        };
        let chunks: Vec<Result<Vec<u8>, String>> = events.iter().map(|e| Ok(format!("data: {e}\n\n").into_bytes())).collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    fn now_ms(&self) -> f64 {
        self.clock.get()
    }
    async fn sleep(&self, _ms: u64) {
        futures::future::pending::<()>().await
    }
    fn random(&self) -> f64 {
        0.5
    }
    fn abort_in_flight(&self) {}
    fn secrets(&self) -> &Secrets {
        &self.secrets
    }
    fn meter(&self) -> Option<&Meter> {
        Some(&self.meter)
    }
}

struct Sink2 {
    bytes: Vec<u8>,
    /// Sends after which the client is gone.
    leave_after: Option<usize>,
}

impl Sink for Sink2 {
    fn send(&mut self, bytes: Vec<u8>) -> Pin<Box<dyn Future<Output = Result<(), ()>> + '_>> {
        let r = match &mut self.leave_after {
            Some(0) => Err(()),
            n => {
                if let Some(n) = n {
                    *n -= 1;
                }
                self.bytes.extend_from_slice(&bytes);
                Ok(())
            }
        };
        Box::pin(std::future::ready(r))
    }
    fn gone(&self) -> Gone {
        Box::pin(futures::future::pending())
    }
}

/// A model at `price` USD per million input tokens (output: twice that).
fn m(name: &str, price: Option<f64>) -> Value {
    let mut v = json!({"endpoint": "https://x.test/v1", "model": name, "max_retries": 0});
    if let Some(p) = price {
        v["price"] = json!({"input": p, "output": p * 2.0});
    }
    v
}

fn ens(panel: Vec<Value>, summary: Vec<Value>, policy: Value) -> Ensemble {
    let mut e = json!({"panel": panel, "summary": summary});
    e.as_object_mut().unwrap().extend(policy.as_object().unwrap().clone());
    parse_config(&json!({"ensembles": {"e": e}}).to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0)
}

fn request(stream: bool) -> Request {
    chat::decode(json!({"stream": stream, "messages": [{"role": "user", "content": "2+2?"}]}).to_string().as_bytes()).unwrap()
}

fn n1_of(rt: &Rt, e: &Ensemble) -> Value {
    let a = block_on(complete(rt, &e.lineup(false, crate::core::config::Route::Ensemble).unwrap(), &request(false))).unwrap();
    let ids = ReplyIds { id: "x".into(), created: 1, model: "e".into() };
    serde_json::from_slice::<Value>(&chat::reply(&ids, &a)).unwrap()["n1"].take()
}

fn stream_n1(rt: &Rt, e: &Ensemble, leave_after: Option<usize>) -> Option<Value> {
    let ids = ReplyIds { id: "x".into(), created: 1, model: "e".into() };
    let req = request(true);
    let mut enc = ChatStream::new(&ids, false);
    let mut sink = Sink2 { bytes: vec![], leave_after };
    let mut out = Out::new(&mut enc, &mut sink, false);
    out.meter = rt.meter();
    block_on(stream(rt, &e.lineup(false, crate::core::config::Route::Ensemble).unwrap(), &req, &mut out));
    let text = String::from_utf8(sink.bytes).unwrap();
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).filter_map(|d| serde_json::from_str::<Value>(d).ok()).find_map(|v| v.get("n1").cloned())
}

fn usd(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

const USAGE_CHUNK: &str = r#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}"#;
const TEXT_CHUNK: &str = r#"{"choices":[{"index":0,"delta":{"content":"0123456789abcdefghij"}}]}"#;
const FINISH_CHUNK: &str = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;

#[test]
fn non_streaming_costs_per_member_summary_and_total() {
    let rt = Rt::new(&[("b", Reply::Usage(Some((20, 10)))), ("s", Reply::Usage(Some((100, 50))))]);
    let e = ens(vec![m("a", Some(1.0)), m("b", Some(2.0))], vec![m("s", Some(3.0))], json!({}));
    let n1 = n1_of(&rt, &e);
    assert_eq!(usd(&n1["panel"][0]["cost_usd"]), (10.0 * 1.0 + 5.0 * 2.0) / 1e6);
    assert_eq!(usd(&n1["panel"][1]["cost_usd"]), (20.0 * 2.0 + 10.0 * 4.0) / 1e6);
    assert_eq!(usd(&n1["summary"]["cost_usd"]), (100.0 * 3.0 + 50.0 * 6.0) / 1e6);
    assert_eq!(usd(&n1["cost_usd"]), (20.0 + 80.0 + 600.0) / 1e6);
    assert!(n1.get("cost_estimated").is_none());
    assert_eq!(rt.meter.charges().len(), 3);
    assert!(rt.meter.charges().iter().all(|c| c.end == End::Answered && c.attempts == 1));
}

#[test]
fn streaming_costs_ride_on_the_chunk_that_carries_n1() {
    let rt = Rt::new(&[("s", Reply::Stream(vec![TEXT_CHUNK, FINISH_CHUNK, USAGE_CHUNK, "[DONE]"]))]);
    let e = ens(vec![m("a", Some(1.0))], vec![m("s", Some(3.0))], json!({}));
    let n1 = stream_n1(&rt, &e, None).expect("a finish chunk with n1");
    assert_eq!(usd(&n1["summary"]["cost_usd"]), (100.0 * 3.0 + 50.0 * 6.0) / 1e6);
    assert_eq!(usd(&n1["cost_usd"]), (20.0 + 600.0) / 1e6);
    let spend = rt.meter.spend();
    assert_eq!((spend.input_tokens, spend.output_tokens), (110, 55));
}

#[test]
fn an_unpriced_model_makes_its_cost_and_the_total_null_in_both_modes() {
    let e = ens(vec![m("a", None), m("b", Some(1.0))], vec![m("s", Some(1.0))], json!({}));
    let n1 = n1_of(&Rt::new(&[]), &e);
    assert!(n1["panel"][0]["cost_usd"].is_null() && n1["cost_usd"].is_null());
    assert_eq!(usd(&n1["panel"][1]["cost_usd"]), 20.0 / 1e6);
    let rt = Rt::new(&[("s", Reply::Stream(vec![TEXT_CHUNK, FINISH_CHUNK, USAGE_CHUNK]))]);
    let n1 = stream_n1(&rt, &e, None).unwrap();
    assert!(n1["panel"][0]["cost_usd"].is_null() && n1["cost_usd"].is_null());
}

#[test]
fn cancelled_and_refused_calls_and_failed_fallbacks_are_counted() {
    // a answers, b hangs and is cancelled by the quorum, c is refused; the
    // first summary model is refused, the fallback answers without usage.
    let rt = Rt::new(&[("b", Reply::Hang), ("c", Reply::Status(500)), ("s1", Reply::Status(429)), ("s2", Reply::Usage(None))]);
    let e = ens(vec![m("a", Some(1.0)), m("b", Some(1.0)), m("c", Some(1.0))], vec![m("s1", Some(1.0)), m("s2", Some(1.0))], json!({"quorum": 1}));
    let n1 = n1_of(&rt, &e);
    assert_eq!(n1["panel"][1]["status"], "cancelled");
    // b: its body's characters / 4 as input tokens, estimated.
    let charges = rt.meter.charges();
    let b = charges.iter().find(|c| c.model == "b").unwrap();
    assert_eq!(b.end, End::Open);
    let (bu, estimated) = b.usage();
    assert!(estimated && bu.prompt_tokens > 5 && bu.completion_tokens == 0, "{bu:?}");
    assert_eq!(n1["panel"][1]["cost_estimated"], json!(true));
    assert_eq!(usd(&n1["panel"][1]["cost_usd"]), bu.prompt_tokens as f64 / 1e6);
    // c and s1 were refused: nothing. s2 reported no usage: estimated, with its answer ("four") as output.
    assert_eq!(usd(&n1["panel"][2]["cost_usd"]), 0.0);
    let s2 = charges.iter().find(|c| c.model == "s2").unwrap_or_else(|| panic!("{n1}"));
    assert_eq!((s2.end, s2.usage().0.completion_tokens, s2.usage().1), (End::Answered, 1, true));
    assert_eq!(n1["summary"]["cost_estimated"], json!(true));
    let total: f64 = charges.iter().map(|c| c.cost().unwrap()).sum();
    assert!((usd(&n1["cost_usd"]) - total).abs() < 1e-12);
    assert_eq!(n1["cost_estimated"], json!(true));
}

#[test]
fn a_stream_cut_midway_is_charged_for_what_was_sent_and_received() {
    let rt = Rt::new(&[("s", Reply::Stream(vec![TEXT_CHUNK, TEXT_CHUNK]))]);
    let e = ens(vec![m("a", Some(1.0))], vec![m("s", Some(1.0))], json!({}));
    assert!(stream_n1(&rt, &e, None).is_none(), "no n1: the stream ended with an error event");
    let charges = rt.meter.charges();
    let s = &charges[1];
    assert_eq!(s.end, End::Open);
    assert_eq!(s.usage().0.completion_tokens, 10, "40 characters received");
    assert!(s.usage().1);
    let spend = rt.meter.spend();
    assert_eq!(spend.output_tokens, 5 + 10);
}

#[test]
fn a_client_that_leaves_is_charged_for_the_calls_made() {
    let rt = Rt::new(&[("s", Reply::Stream(vec![TEXT_CHUNK, TEXT_CHUNK, FINISH_CHUNK, USAGE_CHUNK]))]);
    let e = ens(vec![m("a", Some(1.0))], vec![m("s", Some(1.0))], json!({}));
    // The opening and one chunk go out, then the client is gone.
    assert!(stream_n1(&rt, &e, Some(2)).is_none());
    let charges = rt.meter.charges();
    assert_eq!(charges.len(), 2);
    assert_eq!(charges[0].end, End::Answered);
    assert_eq!((charges[1].end, charges[1].usage().0.completion_tokens), (End::Open, 10), "both chunks were received; the second could not be sent");
}

#[test]
fn layers_are_costed_per_layer() {
    let rt = Rt::new(&[]);
    let e = ens(vec![m("a", Some(1.0)), m("b", Some(2.0))], vec![m("s", Some(1.0))], json!({"layers": 2}));
    let n1 = n1_of(&rt, &e);
    let layers = n1["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert_eq!((usd(&l[0]["cost_usd"]), usd(&l[1]["cost_usd"])), (20.0 / 1e6, 40.0 / 1e6));
    }
    assert_eq!(usd(&n1["cost_usd"]), (2.0 * 60.0 + 20.0) / 1e6);
    let layers_seen: Vec<usize> = rt.meter.charges().iter().filter(|c| !c.summary).map(|c| c.layer).collect();
    assert_eq!(layers_seen, [1, 1, 2, 2]);
}
