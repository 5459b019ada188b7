//! Edge: `POST /v1/chat/completions`. Parses and routes the request, then runs
//! the ensemble policy with the fetch runtime, in either output mode.

use futures::StreamExt;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys, web_sys::Request, Context, Env, Response, ResponseBuilder};

use crate::access::header;
use crate::auth::Principal;
use crate::config::Config;
use crate::ensemble::{self, Sink};
use crate::error::N1Error;
use crate::http;
use crate::request::{check_limits, has_images, parse_chat_request};
use crate::response::ReplyIds;
use crate::settings::{self, Keys};
use crate::upstream::FetchRuntime;

pub async fn handle(req: Request, env: &Env, ctx: &Context, config: &Config, who: &Principal) -> Result<Response, N1Error> {
    let bytes = read_body(&req, settings::max_body_bytes(env)).await?;
    let mut chat = parse_chat_request(&bytes)?;
    check_limits(&chat, &settings::limits(env))?;
    // Progress events may also be asked for with a header, for clients that cannot add body fields.
    if header(&req, "x-n1-progress").is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes")) {
        chat.progress = true;
    }
    let named = config
        .ensemble(chat.model.as_deref())
        .ok_or_else(|| N1Error::ModelNotFound(chat.model.clone().unwrap_or_default()))?;
    who.check(&named.name)?;
    // Requests with images go to the ensemble's vision models.
    let ens = named.for_request(has_images(chat.messages()))?;
    let keys = Keys::resolve(env, &ens)?;
    let secrets = keys.values(&ens);
    let ai = js_sys::Reflect::get(env, &"AI".into()).ok().filter(|v| !v.is_undefined());
    let rt = FetchRuntime::new(keys, secrets, ai);
    let ids = ReplyIds {
        id: http::random_id("chatcmpl-"),
        created: (js_sys::Date::now() / 1000.0) as u64,
        model: ens.name.clone(),
    };

    if !chat.stream {
        let reply = ensemble::complete(&rt, &ens, &chat, &ids).await?;
        let resp = http::json(200, &reply.body);
        let h = resp.headers();
        let _ = h.set("x-n1-ensemble", &ens.name);
        let _ = h.set("x-n1-panel", &format!("{}/{}", reply.panel_ok, reply.panel_total));
        let _ = h.set("x-n1-degraded", if reply.degraded { "true" } else { "false" });
        if reply.fallback {
            let _ = h.set("x-n1-fallback", "best_panel_answer");
        }
        return Ok(resp);
    }

    // Headers leave now; the panel and the summary write into the stream
    // (which outlives this call, hence the owned ensemble).
    let ens = ens.into_owned();
    let ens_name = ens.name.clone();
    let (readable, writer) = reply_stream().ok_or_else(|| N1Error::Internal("could not create a stream".into()))?;
    let test_panic = settings::flag(env, "N1_ENABLE_TEST_HOOKS")
        && header(&req, "x-n1-test-panic").as_deref() == Some("stream");
    ctx.wait_until(async move {
        if test_panic {
            panic!("test hook: deliberate panic mid-stream");
        }
        let mut sink = WriterSink { writer };
        ensemble::stream(&rt, &ens, &chat, &ids, &mut sink).await;
        let _ = JsFuture::from(sink.writer.close()).await;
    });
    let resp = ResponseBuilder::new()
        .with_status(200)
        .with_header("content-type", "text/event-stream; charset=utf-8")
        .and_then(|b| b.with_header("cache-control", "no-cache"))
        .and_then(|b| b.with_header("x-accel-buffering", "no"))
        .and_then(|b| b.with_header("x-n1-ensemble", &ens_name))
        .map_err(|_| N1Error::Internal("could not build headers".into()))?
        .stream(readable);
    Ok(resp)
}

/// The body, refused with 413 past `max` bytes: from `content-length` before
/// reading (then read whole by the runtime, one copy into Wasm), and while
/// reading when it is absent (chunked uploads).
async fn read_body(req: &Request, max: u64) -> Result<Vec<u8>, N1Error> {
    let declared = header(req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(N1Error::PayloadTooLarge(max));
    }
    let unreadable = || N1Error::invalid("The request body could not be read.", None);
    if declared.is_some() {
        let buf = JsFuture::from(req.array_buffer().map_err(|_| unreadable())?).await.map_err(|_| unreadable())?;
        let body = js_sys::Uint8Array::new(&buf);
        if body.length() as u64 > max {
            return Err(N1Error::PayloadTooLarge(max));
        }
        return Ok(body.to_vec());
    }
    let Some(stream) = req.body() else { return Ok(Vec::new()) };
    let mut body = Vec::new();
    let mut stream = worker::ByteStream::from(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() as u64 + chunk.len() as u64 > max {
            drain(&mut stream, DRAIN_MAX_BYTES).await;
            return Err(N1Error::PayloadTooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How much of an oversized chunked upload is still read (and dropped) before
/// the 413. Replying with the body unread, or cancelled, wedges `wrangler dev`'s
/// proxy: the next request hangs or gets its 503 "Your worker restarted
/// mid-request". Past this much the rest is cancelled (dropping the stream).
const DRAIN_MAX_BYTES: u64 = 16 << 20;

async fn drain(stream: &mut worker::ByteStream, mut left: u64) {
    while let Some(Ok(chunk)) = stream.next().await {
        left = left.saturating_sub(chunk.len() as u64);
        if left == 0 {
            break;
        }
    }
}

/// The reply stream and its writer: from worker/entry.mjs (which can then end
/// the stream should the instance die mid-way), else a stream of our own.
fn reply_stream() -> Option<(web_sys::ReadableStream, web_sys::WritableStreamDefaultWriter)> {
    let global = js_sys::global();
    if let Ok(f) = js_sys::Reflect::get(&global, &"__n1_reply_stream".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let pair: js_sys::Array = f.call0(&global).ok()?.dyn_into().ok()?;
        return Some((pair.get(0).dyn_into().ok()?, pair.get(1).dyn_into().ok()?));
    }
    let ts = web_sys::TransformStream::new().ok()?;
    let writer = ts.writable().get_writer().ok()?;
    Some((ts.readable(), writer))
}

struct WriterSink {
    writer: web_sys::WritableStreamDefaultWriter,
}

impl Sink for WriterSink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        let chunk = js_sys::Uint8Array::from(bytes.as_slice());
        // Rejects once the client has gone away.
        JsFuture::from(self.writer.write_with_chunk(chunk.unchecked_ref()))
            .await
            .map(|_| ())
            .map_err(|_| ())
    }

    /// `writer.closed` rejects once the runtime cancels our response body.
    /// workerd notices a disconnected client only by writing to it (with the
    /// second write after it left, the third behind `wrangler dev`'s proxy), so
    /// the keep-alive comments double as the disconnect probe while the panel works.
    fn gone(&self) -> ensemble::Gone {
        let closed = JsFuture::from(self.writer.closed());
        Box::pin(async move {
            if closed.await.is_ok() {
                // Closed by us: never "gone".
                futures::future::pending::<()>().await;
            }
        })
    }
}
