//! Edge: turning our results into responses, and random ids. Responses are
//! the runtime's own `Response` objects built with `new Response(body, init)`:
//! workers-rs' `Response` is converted to one anyway, at a measurable cost in
//! CPU per request and in Wasm bytes.

use wasm_bindgen::JsValue;
use worker::web_sys::{self, ReadableStream, ResponseInit};

pub use web_sys::Response;

use crate::core::dialects::Dialect;
use crate::core::error::N1Error;

/// The init of a response: its status and headers (a plain object, which the
/// runtime reads faster than a `Headers`).
fn init(status: u16, headers: &[(&str, &str)]) -> ResponseInit {
    let h = js_sys::Object::new();
    for (k, v) in headers {
        let _ = js_sys::Reflect::set(&h, &JsValue::from_str(k), &JsValue::from_str(v));
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&h);
    init
}

/// A JSON response. (Only a status outside 200-599 makes `new Response` throw.)
pub fn json(status: u16, body: Vec<u8>) -> Response {
    let body = js_sys::Uint8Array::from(body.as_slice());
    Response::new_with_opt_buffer_source_and_init(Some(&body), &init(status, &[("content-type", "application/json")])).expect("a valid status")
}

/// A response without a body.
pub fn empty(status: u16) -> Response {
    Response::new_with_opt_str_and_init(None, &init(status, &[])).expect("a valid status")
}

/// A 200 whose body is this stream.
pub fn stream(body: &ReadableStream, headers: &[(&str, &str)]) -> Response {
    Response::new_with_opt_readable_stream_and_init(Some(body), &init(200, headers)).expect("a valid status")
}

/// The one place an `N1Error` becomes an HTTP response, in the dialect's error shape.
pub fn error(dialect: Dialect, e: &N1Error) -> Response {
    let (status, body) = dialect.error(e);
    let resp = json(status, body);
    let h = resp.headers();
    match e {
        N1Error::MethodNotAllowed { allowed, .. } => {
            let _ = h.set("allow", allowed);
        }
        N1Error::RateLimited(s) => {
            let _ = h.set("retry-after", &s.to_string());
        }
        // The OpenAI and Anthropic SDKs retry a 429 unless told not to: a budget does not come back by retrying.
        N1Error::OverBudget(_) => {
            let _ = h.set("x-should-retry", "false");
        }
        N1Error::MissingKey | N1Error::InvalidKey | N1Error::AuthNotConfigured => {
            let _ = h.set("www-authenticate", "Bearer");
        }
        _ => {}
    }
    resp
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` + 24 random base-62 characters.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // Never expected in workerd; ids stay unique enough from the clock.
        let t = js_sys::Date::now() as u64;
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = (t >> (i % 8 * 8)) as u8 ^ i as u8);
    }
    let mut s = String::with_capacity(prefix.len() + 24);
    s.push_str(prefix);
    s.extend(bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char));
    s
}
