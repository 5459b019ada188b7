//! Edge: turning our results into `worker::Response`s, and random ids.

use worker::{Response, ResponseBuilder};

use crate::core::dialects::Dialect;
use crate::core::error::N1Error;

/// A JSON response. Building one cannot fail for a valid status and ASCII headers.
pub fn json(status: u16, body: Vec<u8>) -> Response {
    ResponseBuilder::new().with_status(status).with_header("content-type", "application/json").expect("static header").fixed(body)
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
