//! Edge: everything read from the environment. The configuration (KV
//! `CONFIG`/`config`, else the `N1_CONFIG` var or secret), parsed once and
//! cached per isolate; the provider keys it names; the operator's switches and
//! limits.

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::core::auth::{parse_keys, ClientKey};
use crate::core::config::{parse_config, ApiKey, Config, ConfigOptions, Ensemble, ModelSpec};
use crate::core::error::N1Error;
use crate::core::request::Limits;
use crate::core::secrets::Secrets;

/// How long an isolate trusts its copy before looking at KV/vars again.
const TTL_MS: f64 = 5_000.0;

struct Cached {
    raw: String,
    parsed: Rc<Config>,
    /// When it was read, or when its refresh began.
    at: f64,
    /// A request found it stale: the next reply to leave reads it again.
    refresh_due: bool,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// The configuration. A copy older than `TTL_MS` still answers, and is read
/// again after the reply (`refresh_later`), so no request waits for KV once
/// the isolate has one and none shares its CPU with that read (under
/// `wrangler dev` a KV read costs a request ~0.9 ms when it runs beside it):
/// a change is seen from the request after that read. A read that fails drops
/// the copy, so the next request reads again and gets the error (a
/// configuration made invalid is not hidden behind the old one).
pub async fn config(env: &Env) -> Result<Rc<Config>, N1Error> {
    let now = js_sys::Date::now();
    let cached = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.as_mut()?;
        if now - c.at >= TTL_MS {
            c.at = now; // one refresh per TTL, however many requests come meanwhile
            c.refresh_due = true;
        }
        Some(c.parsed.clone())
    });
    match cached {
        Some(cfg) => Ok(cfg),
        None => load(env).await,
    }
}

/// The refresh a stale copy asked for, if any (taken: one reply runs it).
pub fn refresh_later(env: &Env) -> Option<impl std::future::Future<Output = ()>> {
    let due = CACHE.with(|c| c.borrow_mut().as_mut().is_some_and(|c| std::mem::take(&mut c.refresh_due)));
    due.then(|| {
        let env = env.clone();
        async move {
            let _ = load(&env).await;
        }
    })
}

/// Reads and parses the configuration into the cache (or empties the cache).
async fn load(env: &Env) -> Result<Rc<Config>, N1Error> {
    let now = js_sys::Date::now();
    let raw = match read_raw(env).await {
        Ok(Some(raw)) => raw,
        // No config, but Workers AI is bound: the built-in zero-key ensemble.
        Ok(None) if js_sys::Reflect::get(env, &"AI".into()).is_ok_and(|v| !v.is_undefined()) => {
            crate::core::providers::workers_ai::DEFAULT_CONFIG.clone()
        }
        Ok(None) => return Err(forget(N1Error::ConfigMissing)),
        Err(e) => return Err(forget(e)),
    };
    // Same text as before: keep the parsed copy.
    let same = CACHE.with(|c| c.borrow().as_ref().filter(|c| c.raw == raw).map(|c| c.parsed.clone()));
    let parsed = match same {
        Some(p) => p,
        None => {
            let opts = ConfigOptions { allow_insecure_upstreams: flag(env, "N1_ALLOW_INSECURE_UPSTREAMS") };
            Rc::new(parse_config(&raw, opts).map_err(|e| forget(N1Error::Config(e)))?)
        }
    };
    CACHE.with(|c| *c.borrow_mut() = Some(Cached { raw, parsed: parsed.clone(), at: now, refresh_due: false }));
    Ok(parsed)
}

fn forget(e: N1Error) -> N1Error {
    CACHE.with(|c| *c.borrow_mut() = None);
    e
}

async fn read_raw(env: &Env) -> Result<Option<String>, N1Error> {
    if let Some(ns) = super::kv::namespace(env, "CONFIG") {
        let v = super::kv::get(&ns, "config")
            .await
            .map_err(|_| N1Error::Internal("reading the CONFIG KV namespace failed".into()))?;
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            return Ok(Some(v));
        }
    }
    Ok(string_binding(env, "N1_CONFIG").or_else(|| {
        // A `[vars]` table in wrangler.toml arrives as an object.
        let v = js_sys::Reflect::get(env, &"N1_CONFIG".into()).ok().filter(|v| v.is_object())?;
        js_sys::JSON::stringify(&v).ok().map(String::from)
    }))
}

/// `true`, `1` or `yes`.
pub fn flag(env: &Env, name: &str) -> bool {
    string_binding(env, name).is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// `N1_LOG_REQUESTS`: `errors` (default) logs a line for replies with status
/// 400 and up, `all` for every request. The platform records every request
/// already (invocation logs, `wrangler dev`'s own line), and a log line cost
/// workerd ~1 ms of CPU per request under `npm run dev` (bench/NOTES.md).
pub fn log_all_requests(env: &Env) -> bool {
    string_binding(env, "N1_LOG_REQUESTS").is_some_and(|v| v.trim().eq_ignore_ascii_case("all"))
}

fn number(env: &Env, name: &str, default: u64) -> u64 {
    string_binding(env, name).and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// `N1_MAX_BODY_BYTES`, default 1 MiB.
pub fn max_body_bytes(env: &Env) -> u64 {
    number(env, "N1_MAX_BODY_BYTES", 1 << 20)
}

/// `N1_MAX_MESSAGES` and `N1_MAX_CHARS`.
pub fn limits(env: &Env) -> Limits {
    let d = Limits::default();
    Limits {
        max_messages: number(env, "N1_MAX_MESSAGES", d.max_messages as u64) as usize,
        max_chars: number(env, "N1_MAX_CHARS", d.max_chars as u64) as usize,
    }
}

/// The client access keys (`N1_API_KEYS`); a malformed value is a 500 that
/// never quotes it.
pub fn client_keys(env: &Env) -> Result<Vec<ClientKey>, N1Error> {
    match string_binding(env, "N1_API_KEYS") {
        None => Ok(Vec::new()),
        Some(text) => parse_keys(&text).map_err(N1Error::Config),
    }
}

/// `N1_ANONYMOUS_BUDGET`: the budget all anonymous callers share (JSON, as a key's `budget`).
pub fn anonymous_budget(env: &Env) -> Result<Option<crate::core::budget::Limits>, N1Error> {
    let Some(text) = string_binding(env, "N1_ANONYMOUS_BUDGET") else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| N1Error::Config("N1_ANONYMOUS_BUDGET is not JSON".into()))?;
    crate::core::budget::Limits::from_json(&v).map(Some).map_err(|e| N1Error::Config(format!("N1_ANONYMOUS_BUDGET: {e}")))
}

thread_local! {
    /// Vars and secrets, as read once per isolate: they are fixed for an
    /// isolate's life (changing one deploys a new version, in new isolates),
    /// and each read is several calls into JavaScript.
    /// A handful of names: a list is smaller (in Wasm) and as fast as a hash map.
    static BINDINGS: RefCell<Vec<(String, Option<String>)>> = const { RefCell::new(Vec::new()) };
}

/// A secret or a plain-text var.
pub fn string_binding(env: &Env, name: &str) -> Option<String> {
    if let Some(v) = BINDINGS.with(|b| b.borrow().iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())) {
        return v;
    }
    // Secrets and plain-text vars are strings on the environment object.
    let v = js_sys::Reflect::get(env, &name.into()).ok().and_then(|v| v.as_string()).filter(|s| !s.is_empty());
    BINDINGS.with(|b| b.borrow_mut().push((name.to_owned(), v.clone())));
    v
}

/// The API keys an ensemble's models need, by secret name (or literal), read
/// before any upstream call so a missing secret is a clear 500, not N failures.
pub struct Keys {
    by_name: Vec<(String, String)>,
}

impl Keys {
    pub fn resolve<'a>(env: &Env, models: impl Iterator<Item = &'a ModelSpec>) -> Result<Keys, N1Error> {
        let mut by_name: Vec<(String, String)> = Vec::new();
        for m in models {
            if let ApiKey::Secret(name) = &m.api_key {
                if by_name.iter().any(|(n, _)| n == name) {
                    continue;
                }
                let value = string_binding(env, name).ok_or_else(|| {
                    N1Error::Config(format!(
                        "model `{}` needs the secret `{name}`, which is not set (wrangler secret put {name}, or .dev.vars locally)",
                        m.model
                    ))
                })?;
                by_name.push((name.clone(), value));
            }
        }
        Ok(Keys { by_name })
    }

    pub fn get<'a>(&'a self, key: &'a ApiKey) -> Option<&'a str> {
        match key {
            ApiKey::None => None,
            ApiKey::Secret(name) => self.by_name.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()),
            ApiKey::Literal(v) => Some(v),
        }
    }

    /// Every key value of the ensemble, to scrub from upstream text.
    pub fn secrets(&self, ens: &Ensemble) -> Secrets {
        let literals = ens.models().filter_map(|m| match &m.api_key {
            ApiKey::Literal(k) => Some(k.clone()),
            _ => None,
        });
        Secrets::new(self.by_name.iter().map(|(_, v)| v.clone()).chain(literals))
    }
}
