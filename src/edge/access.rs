//! Edge: who may call. Browser origins (CORS), client keys, rate limits; all
//! decided before any upstream call is made.

use worker::{js_sys, web_sys::Request, Env};

use super::env;
use super::http::{self, Response};
use super::promise;
use crate::core::auth::{self, AuthSetup, Principal};
use crate::core::config::Config;
use crate::core::cors::CorsPolicy;
use crate::core::error::N1Error;

/// Rate limit window of the `RATE_LIMITER` binding (wrangler.toml), for Retry-After.
const RATE_PERIOD_S: u64 = 60;

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The request's `Origin` if it is allowed; `Err` if it is a browser origin we
/// refuse. Refusing (rather than only withholding CORS headers) matters: a
/// "simple" cross-site POST needs no preflight and would otherwise spend money.
pub fn check_origin(req: &Request, env: &Env) -> Result<Option<String>, N1Error> {
    let Some(origin) = header(req, "origin") else { return Ok(None) };
    let policy = CorsPolicy::parse(env::string_binding(env, "N1_CORS_ORIGINS").as_deref());
    if policy.allows(&origin, crate::core::url::origin_of(&req.url())) {
        Ok(Some(origin))
    } else {
        Err(N1Error::OriginNotAllowed)
    }
}

/// `OPTIONS`: answered here, without auth and without any upstream call.
pub fn preflight(req: &Request, env: &Env) -> Response {
    match check_origin(req, env) {
        Ok(Some(origin)) => {
            let resp = http::empty(204);
            let h = resp.headers();
            for (k, v) in CorsPolicy::preflight_headers(&origin, header(req, "access-control-request-headers").as_deref()) {
                let _ = h.set(k, &v);
            }
            resp
        }
        Ok(None) => http::empty(204),
        Err(e) => http::error(crate::core::dialects::Dialect::Chat, &e),
    }
}

pub fn add_cors(resp: &Response, origin: &str) {
    let h = resp.headers();
    for (k, v) in CorsPolicy::reply_headers(origin) {
        let _ = h.set(k, &v);
    }
}

/// The caller, from its key. `config` is passed even when it failed to load, so
/// that an unauthenticated client sees a 401, not the operator's config error.
pub fn authenticate(req: &Request, env: &Env, config: &Result<std::rc::Rc<Config>, N1Error>) -> Result<Principal, N1Error> {
    let keys = env::client_keys(env)?;
    let legacy = config.as_ref().ok().and_then(|c| c.legacy_client_key.as_deref().map(|k| (k, c.default_ensemble.as_str())));
    let setup = AuthSetup { keys: &keys, legacy_key: legacy, allow_anonymous: env::flag(env, "N1_ALLOW_ANONYMOUS") };
    let authorization = header(req, "authorization");
    let x_api_key = header(req, "x-api-key");
    let mut who = auth::authenticate(&setup, auth::presented_key(authorization.as_deref(), x_api_key.as_deref()))?;
    if who.anonymous {
        who.budget = env::anonymous_budget(env)?;
    }
    Ok(who)
}

/// Per key, or per client IP for anonymous callers, with the `RATE_LIMITER`
/// binding when it is configured (called directly: workers-rs' wrapper
/// converts through serde-wasm-bindgen, more Wasm than this one call needs).
pub async fn rate_limit(req: &Request, env: &Env, who: &Principal) -> Result<(), N1Error> {
    use wasm_bindgen::JsCast;
    let Some(limiter) = js_sys::Reflect::get(env, &"RATE_LIMITER".into()).ok().filter(|v| v.is_object()) else { return Ok(()) };
    let key = if who.anonymous {
        format!("ip:{}", header(req, "cf-connecting-ip").unwrap_or_else(|| "unknown".into()))
    } else {
        who.label.clone()
    };
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"key".into(), &key.into());
    let call = js_sys::Reflect::get(&limiter, &"limit".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call1(&limiter, &options).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
    let Some(promise) = call else { return Ok(()) };
    match promise::wait(&promise).await {
        Ok(outcome) if js_sys::Reflect::get(&outcome, &"success".into()).is_ok_and(|s| s.is_falsy()) => Err(N1Error::RateLimited(RATE_PERIOD_S)),
        // A limiter fault must not take the endpoint down.
        _ => Ok(()),
    }
}
