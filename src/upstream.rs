//! Edge: upstream calls through `worker::Fetch`, with a per-call timeout that
//! aborts the fetch. Implements the ensemble's `Runtime`.

use std::pin::Pin;
use std::time::Duration;

use futures::future::{select, Either};
use futures::stream::{Stream, StreamExt};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

use crate::config::ModelSpec;
use crate::ensemble::Runtime;
use crate::error::Failure;
use crate::response::{self, Completion};
use crate::settings::Keys;

/// Used when a model sets no `timeout_ms`: LLMs can take minutes on long answers.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;

pub struct FetchRuntime {
    pub keys: Keys,
    pub secrets: Vec<String>,
}

type Body = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>>>>;

impl FetchRuntime {
    fn failure(&self, m: &ModelSpec, status: Option<u16>, kind: &'static str, reason: String) -> Failure {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        Failure { model: m.model.clone(), status, kind, reason: response::clean_reason(&reason, &secrets) }
    }

    fn request(&self, m: &ModelSpec, body: String) -> Result<Request, worker::Error> {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        if let Some(k) = self.keys.get(&m.api_key) {
            headers.set("authorization", &format!("Bearer {k}"))?;
        }
        for (k, v) in &m.headers {
            headers.set(k, v)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        Request::new_with_init(&m.endpoint, &init)
    }

    /// Send, and read the status; non-2xx becomes a failure with a short reason.
    async fn send(&self, m: &ModelSpec, body: String, signal: &worker::AbortSignal) -> Result<Response, Failure> {
        let req = self
            .request(m, body)
            .map_err(|e| self.failure(m, None, "error", format!("bad request to upstream: {e}")))?;
        let mut resp = Fetch::Request(req)
            .send_with_signal(signal)
            .await
            .map_err(|e| self.failure(m, None, "error", format!("network error: {e}")))?;
        let status = resp.status_code();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            return Err(Failure { model: m.model.clone(), status: Some(status), kind: "error", reason: response::summarize_error(&text, &secrets) });
        }
        Ok(resp)
    }

    /// Run `work` under the model's timeout; on expiry the fetch is aborted.
    async fn timed<T>(
        &self,
        m: &ModelSpec,
        work: impl std::future::Future<Output = Result<T, Failure>>,
        controller: AbortController,
    ) -> Result<T, Failure> {
        let ms = m.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        let work = Box::pin(work);
        let timer = Box::pin(Delay::from(Duration::from_millis(ms)));
        match select(work, timer).await {
            Either::Left((r, _)) => r,
            Either::Right(_) => {
                controller.abort();
                Err(self.failure(m, None, "timeout", format!("no answer within {ms} ms")))
            }
        }
    }
}

impl Runtime for FetchRuntime {
    type Body = Body;

    async fn complete(&self, m: &ModelSpec, body: String) -> Result<Completion, Failure> {
        let controller = AbortController::default();
        let signal = controller.signal();
        self.timed(
            m,
            async {
                let mut resp = self.send(m, body, &signal).await?;
                let status = resp.status_code();
                let text = resp
                    .text()
                    .await
                    .map_err(|e| self.failure(m, Some(status), "error", format!("reading the answer failed: {e}")))?;
                response::parse_completion(&text).map_err(|r| self.failure(m, Some(status), "error", r))
            },
            controller,
        )
        .await
    }

    async fn open_stream(&self, m: &ModelSpec, body: String) -> Result<Body, Failure> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let mut resp = self.timed(m, self.send(m, body, &signal), controller).await?;
        let stream = resp
            .stream()
            .map_err(|e| self.failure(m, Some(resp.status_code()), "error", format!("no body: {e}")))?;
        Ok(Box::pin(stream.map(|r| r.map_err(|e| e.to_string()))))
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
    }

    fn secrets(&self) -> Vec<String> {
        self.secrets.clone()
    }
}
