//! Edge: request and reply bodies. The request body is read with a size cap;
//! a streamed reply is a stream handed out by worker/entry.mjs (so the entry can
//! still end it should the instance die) and written through `WriterSink`.

use futures::StreamExt;
use wasm_bindgen::JsCast;
use worker::{js_sys, web_sys, web_sys::Request};

use super::access::header;
use super::fetch::JsBody;
use super::promise;
use crate::core::ensemble::{Gone, Sink};
use crate::core::error::N1Error;

/// The body, refused with 413 past `max` bytes: from `content-length` before
/// reading (then read whole by the runtime, one copy into Wasm), and while
/// reading when it is absent (chunked uploads).
pub async fn read(req: &Request, max: u64) -> Result<Vec<u8>, N1Error> {
    let declared = header(req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(N1Error::PayloadTooLarge(max));
    }
    let unreadable = || N1Error::invalid("The request body could not be read.", None);
    if declared.is_some() {
        let buf = promise::wait(&req.array_buffer().map_err(|_| unreadable())?).await.map_err(|_| unreadable())?;
        let body = js_sys::Uint8Array::new(&buf);
        if body.length() as u64 > max {
            return Err(N1Error::PayloadTooLarge(max));
        }
        return Ok(body.to_vec());
    }
    let Some(stream) = req.body() else { return Ok(Vec::new()) };
    let mut body = Vec::new();
    let mut stream = JsBody::new(&stream);
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

async fn drain(stream: &mut JsBody, mut left: u64) {
    while let Some(Ok(chunk)) = stream.next().await {
        left = left.saturating_sub(chunk.len() as u64);
        if left == 0 {
            break;
        }
    }
}

/// The reply stream and its writer: from worker/entry.mjs (which can then end
/// the stream with `on_crash`, the dialect's error event, should the instance
/// die mid-way), else a stream of our own.
pub fn reply_stream(on_crash: &[u8]) -> Option<(web_sys::ReadableStream, web_sys::WritableStreamDefaultWriter)> {
    let global = js_sys::global();
    if let Ok(f) = js_sys::Reflect::get(&global, &"__n1_reply_stream".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let pair: js_sys::Array = f.call1(&global, &js_sys::Uint8Array::from(on_crash)).ok()?.dyn_into().ok()?;
        return Some((pair.get(0).dyn_into().ok()?, pair.get(1).dyn_into().ok()?));
    }
    let ts = web_sys::TransformStream::new().ok()?;
    let writer = ts.writable().get_writer().ok()?;
    Some((ts.readable(), writer))
}

pub struct WriterSink {
    pub writer: web_sys::WritableStreamDefaultWriter,
}

impl Sink for WriterSink {
    fn send(&mut self, bytes: Vec<u8>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ()>> + '_>> {
        let chunk = js_sys::Uint8Array::from(bytes.as_slice());
        // Rejects once the client has gone away.
        let write = promise::wait(&self.writer.write_with_chunk(chunk.unchecked_ref()));
        Box::pin(async move { write.await.map(|_| ()).map_err(|_| ()) })
    }

    /// `writer.closed` rejects once the runtime cancels our response body.
    /// workerd notices a disconnected client only by writing to it (with the
    /// second write after it left, the third behind `wrangler dev`'s proxy), so
    /// the keep-alive comments double as the disconnect probe while the panel works.
    fn gone(&self) -> Gone {
        let closed = promise::wait(&self.writer.closed());
        Box::pin(async move {
            if closed.await.is_ok() {
                // Closed by us: never "gone".
                futures::future::pending::<()>().await;
            }
        })
    }
}
