//! Edge: the `Runtime` the ensemble runs on. Upstream calls with the runtime's
//! own `fetch(url, init)` (or the Workers AI binding); each attempt has a
//! timeout that aborts its fetch, and every open fetch is registered so the
//! policy can abort stragglers, or everything when the client leaves (dropping
//! a Rust future does not abort the JS fetch behind it). Only bytes move here:
//! the core builds the bodies and decodes the replies. Bodies are read whole,
//! or chunk by chunk for streams, with as few calls into JavaScript as we could
//! manage: this glue is most of N-1's CPU per request (see BENCHMARKS.md).

use std::cell::RefCell;
use std::pin::Pin;

use futures::future::{select, Either};
use futures::stream::Stream;
use worker::web_sys::AbortController;
use worker::web_sys;

use wasm_bindgen::{JsCast, JsValue};

use super::env::Keys;
use super::promise;
use super::timers::Timers;
use crate::core::config::{ModelSpec, Provider};
use crate::core::cost::Meter;
use crate::core::ensemble::{retry, Runtime};
use crate::core::error::{Failure, FailureKind};
use crate::core::providers::workers_ai;
use crate::core::secrets::Secrets;

pub struct FetchRuntime {
    keys: Keys,
    secrets: Secrets,
    open: RefCell<Vec<AbortController>>,
    timers: Timers,
    /// The Workers AI binding, when the worker has one.
    ai: Option<JsValue>,
    /// Every call of the request, for costs, budgets and metrics.
    pub meter: Meter,
}

type Body = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>>>>;

impl FetchRuntime {
    pub fn new(keys: Keys, secrets: Secrets, ai: Option<JsValue>) -> Self {
        FetchRuntime { keys, secrets, open: RefCell::new(Vec::new()), timers: Timers::new(), ai, meter: Meter::default() }
    }

    fn failure(&self, m: &ModelSpec, status: Option<u16>, kind: FailureKind, reason: &str) -> Failure {
        Failure::new(&m.model, status, kind, self.secrets.scrub(reason))
    }

    /// Send with `fetch(url, init)` (no `Request` object, and the raw
    /// `Response` kept: workers-rs' wrappers cost a measurable share of a
    /// small request's CPU), and check the status; non-2xx becomes a failure
    /// with a short reason and the upstream's Retry-After.
    async fn send(&self, m: &ModelSpec, body: &str, signal: &web_sys::AbortSignal) -> Result<web_sys::Response, Failure> {
        // A plain object, not a `Headers`: fetch() reads it measurably faster.
        // Names lowercased, so a configured header replaces ours.
        let headers = js_sys::Object::new();
        let set = |k: &str, v: &str| {
            let _ = js_sys::Reflect::set(&headers, &JsValue::from_str(&k.to_ascii_lowercase()), &JsValue::from_str(v));
        };
        set("content-type", "application/json");
        for (k, v) in m.provider.headers(self.keys.get(&m.api_key)) {
            set(k, &v);
        }
        for (k, v) in &m.headers {
            set(k, v);
        }
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(body));
        init.set_signal(Some(signal));
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let resp = promise::wait(&global.fetch_with_str_and_init(&m.endpoint, &init))
            .await
            .map_err(|e| self.failure(m, None, FailureKind::Error, &format!("network error: {}", js_error(&e))))?;
        let resp: web_sys::Response = resp.unchecked_into();
        let status = resp.status();
        if !(200..300).contains(&status) {
            let h = resp.headers();
            let retry_after = retry_after_ms(h.get("retry-after").ok().flatten(), h.get("retry-after-ms").ok().flatten());
            let text = read_text(&resp).await.unwrap_or_default();
            let mut f = Failure::new(&m.model, Some(status), FailureKind::Error, self.secrets.summarize_error(&text));
            f.retry_after_ms = retry_after;
            return Err(f);
        }
        Ok(resp)
    }

    /// A registered controller for one attempt.
    fn controller(&self) -> AbortController {
        let c = AbortController::new().expect("AbortController exists in workerd");
        let mut open = self.open.borrow_mut();
        // Finished attempts' controllers are harmless to keep; cap the list anyway.
        if open.len() > 64 {
            open.drain(..32);
        }
        open.push(c.clone());
        c
    }

    /// Run `work` within `timeout_ms`; on expiry its fetch is aborted.
    /// (A wait on the request's timers around the attempt: AbortSignal.timeout
    /// + AbortSignal.any on the fetch measured slower.)
    async fn timed<T>(
        &self,
        m: &ModelSpec,
        timeout_ms: u64,
        controller: &AbortController,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let work = Box::pin(work);
        let timer = self.timers.sleep(timeout_ms);
        match select(work, timer).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => {
                controller.abort();
                Err(self.failure(m, None, FailureKind::Timeout, &format!("no answer within {timeout_ms} ms")))
            }
        }
    }

    /// `env.AI.run(model, input)`: a JSON output, or a ReadableStream when streaming.
    async fn run_ai(&self, m: &ModelSpec, input: &str) -> Result<JsValue, Failure> {
        let fail = |reason: &str| self.failure(m, None, FailureKind::Error, reason);
        let ai = self.ai.as_ref().ok_or_else(|| {
            fail("the AI binding is not available (Workers AI needs `[ai]` in wrangler.toml; locally it needs a Cloudflare login)")
        })?;
        let run: js_sys::Function = js_sys::Reflect::get(ai, &"run".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| fail("the AI binding has no run()"))?;
        let input = js_sys::JSON::parse(input).map_err(|_| fail("bad input"))?;
        // "<code>: <description>" errors: a missing model says so, with its id.
        let rejected = |e: JsValue| {
            let mut f = workers_ai::binding_failure(&m.model, &js_error(&e));
            f.reason = self.secrets.scrub(&f.reason);
            f
        };
        let promise = run.call2(ai, &m.model.as_str().into(), &input).map_err(rejected)?;
        let promise: js_sys::Promise = promise.dyn_into().map_err(|_| fail("run() did not return a promise"))?;
        promise::wait(&promise).await.map_err(rejected)
    }
}

/// The whole body, read by the runtime in one go (one copy into Wasm, not one
/// per network chunk), as strict UTF-8.
async fn read_text(resp: &web_sys::Response) -> Result<String, String> {
    let promise = resp.array_buffer().map_err(|e| js_error(&e))?;
    let buf = promise::wait(&promise).await.map_err(|e| js_error(&e))?;
    String::from_utf8(js_sys::Uint8Array::new(&buf).to_vec()).map_err(|_| "the answer is not valid UTF-8".to_owned())
}

/// A JavaScript error's message (never its stack).
fn js_error(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.message()),
        None => e.as_string().unwrap_or_else(|| "unknown error".into()),
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `{ done, value }` from `reader.read()`, read with property getters
    /// (no property-name strings passed from Wasm per read).
    type ReadResult;
    #[wasm_bindgen(method, getter)]
    fn done(this: &ReadResult) -> bool;
    #[wasm_bindgen(method, getter)]
    fn value(this: &ReadResult) -> JsValue;
}

/// A response body as a stream of byte chunks, read with the stream's own
/// reader: `reader.read()` per chunk and nothing else (no `releaseLock` after
/// each read, which costs workerd more than the read).
pub struct JsBody {
    reader: web_sys::ReadableStreamDefaultReader,
    pending: Option<promise::Promised>,
    done: bool,
}

impl JsBody {
    pub fn new(stream: &web_sys::ReadableStream) -> Self {
        JsBody { reader: stream.get_reader().unchecked_into(), pending: None, done: false }
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = "export function release(r) { r.read().then((x) => x.done || r.cancel(), () => {}); }")]
extern "C" {
    /// One more read, in JavaScript, off our path: at the body's end (the
    /// usual case after a stream's last event) the connection goes back to
    /// the runtime's pool, which a chunked body cancelled before its last
    /// chunk cannot (measured: 3 connections for 120 calls became 91);
    /// anything more is cancelled.
    fn release(reader: &web_sys::ReadableStreamDefaultReader);
}

/// Left before its end: after the stream's last event, released; mid-read
/// (a call that was cut), cancelled.
impl Drop for JsBody {
    fn drop(&mut self) {
        if !self.done {
            if self.pending.is_some() {
                let _ = self.reader.cancel();
            } else {
                release(&self.reader);
            }
        }
    }
}

impl Stream for JsBody {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let read = this.pending.get_or_insert_with(|| promise::wait(&this.reader.read()));
        let result = futures::ready!(Pin::new(read).poll(cx));
        this.pending = None;
        Poll::Ready(match result.map(JsCast::unchecked_into::<ReadResult>) {
            Ok(r) if r.done() => {
                this.done = true;
                None
            }
            Ok(r) => Some(Ok(js_sys::Uint8Array::new(&r.value()).to_vec())),
            Err(e) => {
                this.done = true;
                Some(Err(js_error(&e)))
            }
        })
    }
}

/// `Retry-After` (seconds or an HTTP date) or `retry-after-ms`.
fn retry_after_ms(seconds: Option<String>, millis: Option<String>) -> Option<u64> {
    retry::parse_retry_after(seconds.as_deref(), millis.as_deref()).or_else(|| {
        let at = js_sys::Date::parse(seconds.as_deref()?);
        at.is_finite().then(|| (at - js_sys::Date::now()).max(0.0) as u64)
    })
}

impl Runtime for FetchRuntime {
    type Body = Body;

    /// Boxed, so its code exists once (the panel and the summary both call it).
    async fn complete(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<String, Failure> {
        let work: Pin<Box<dyn std::future::Future<Output = _> + '_>> = Box::pin(self.complete_once(m, body, timeout_ms));
        work.await
    }

    async fn open_stream(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Body, Failure> {
        let work: Pin<Box<dyn std::future::Future<Output = _> + '_>> = Box::pin(self.open_stream_once(m, body, timeout_ms));
        work.await
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    async fn sleep(&self, ms: u64) {
        self.timers.sleep(ms).await
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }

    fn abort_in_flight(&self) {
        for c in self.open.borrow_mut().drain(..) {
            c.abort();
        }
    }

    fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn meter(&self) -> Option<&Meter> {
        Some(&self.meter)
    }
}

impl FetchRuntime {
    async fn complete_once(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<String, Failure> {
        let controller = self.controller();
        let work = async {
            if m.provider == Provider::WorkersAi {
                let out = self.run_ai(m, body).await?;
                return Ok(js_sys::JSON::stringify(&out).map(String::from).unwrap_or_default());
            }
            let resp = self.send(m, body, &controller.signal()).await?;
            let status = resp.status();
            read_text(&resp)
                .await
                .map_err(|e| self.failure(m, Some(status), FailureKind::Error, &format!("reading the answer failed: {e}")))
        };
        self.timed(m, timeout_ms, &controller, work).await
    }

    async fn open_stream_once(&self, m: &ModelSpec, body: &str, timeout_ms: u64) -> Result<Body, Failure> {
        let controller = self.controller();
        let stream = if m.provider == Provider::WorkersAi {
            let out = self.timed(m, timeout_ms, &controller, self.run_ai(m, body)).await?;
            let rs: web_sys::ReadableStream =
                out.dyn_into().map_err(|_| self.failure(m, None, FailureKind::Error, "Workers AI did not return a stream"))?;
            JsBody::new(&rs)
        } else {
            let resp = self.timed(m, timeout_ms, &controller, self.send(m, body, &controller.signal())).await?;
            let status = resp.status();
            let body = resp.body().ok_or_else(|| self.failure(m, Some(status), FailureKind::Error, "no body"))?;
            JsBody::new(&body)
        };
        Ok(Box::pin(stream))
    }
}
