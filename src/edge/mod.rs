//! The Workers glue (wasm only): every request enters at `fetch` below and
//! follows it top to bottom: CORS, the route, who is calling, the handler;
//! errors become the dialect's error objects in one place, and every reply
//! carries a request id. The modules: `access` (origins, keys, rate limits),
//! `env` (configuration and secrets), `serve` (the dialect handler), `fetch`
//! (the runtime the ensemble calls providers through), `budget` (the budget
//! Durable Object, a request's account, `/v1/n1/usage`), `metrics` (Analytics
//! Engine), `body` (request and reply bodies), `models`, `http`, `timers`
//! (one JS timer per request), `promise` (awaiting JS promises), `task`
//! (the executor the handler and its `waitUntil` work run on).

mod access;
mod body;
mod budget;
mod env;
mod fetch;
mod http;
mod kv;
mod metrics;
mod models;
mod promise;
mod serve;
mod store;
mod task;
mod timers;

use worker::{console_log, event, js_sys, web_sys::Request, Context, Env};

use http::Response;

use crate::core::dialects::Dialect;
use crate::core::error::N1Error;

/// Tell worker/entry.mjs about a panic: the trapped instance cannot settle its
/// requests, so the wrapper fails them with OpenAI-shaped errors. Installed
/// when the Wasm module starts (after workers-rs' own hook, which it chains),
/// so a panic in any request, a fresh instance's first preflight included,
/// reaches the entry.
#[event(start)]
fn start() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let global = js_sys::global();
        if let Ok(f) = js_sys::Reflect::get(&global, &"__n1_on_panic".into()) {
            if let Some(f) = wasm_bindgen::JsCast::dyn_ref::<js_sys::Function>(&f) {
                let _ = f.call0(&global);
            }
        }
        previous(info);
    }));
}

/// The fetch handler, exported as workers-rs' `#[event(fetch)]` would export
/// it, but run on our own executor (`task.rs`: a woken task is polled at once,
/// not from a microtask queued for it).
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn fetch(req: Request, env: Env, ctx: worker::worker_sys::Context) -> js_sys::Promise {
    task::promise(async move { Ok(handle(req, env, Context::new(ctx)).await.into()) })
}

/// The raw `web_sys::Request`: workers-rs' wrapper would read `request.cf` (an
/// object built per access) on every request.
async fn handle(req: Request, env: Env, ctx: Context) -> Response {
    let started = js_sys::Date::now();
    let request_id = http::random_id("req_");
    let method = req.method();
    let url = req.url();
    let path = crate::core::url::path_of(&url);
    let mut who = String::from("-");
    // Test-only (off unless the operator sets N1_ENABLE_TEST_HOOKS): proves
    // that a panic, even in the first request of a fresh instance and before
    // any routing, still ends in a JSON error.
    if env::flag(&env, "N1_ENABLE_TEST_HOOKS") && access::header(&req, "x-n1-test-panic").as_deref() == Some("now") {
        panic!("test hook: deliberate panic");
    }
    // Errors take the shape of the dialect the path belongs to (OpenAI's by default).
    let dialect = match route_of(path, "") {
        Ok(Route::Serve(d)) => d,
        Ok(Route::CountTokens) => Dialect::Messages,
        // Anthropic's paths N-1 does not serve (e.g. /v1/messages/batches): Anthropic's 404.
        _ if path.strip_prefix("/v1").unwrap_or(path).starts_with("/messages/") => Dialect::Messages,
        _ => Dialect::Chat,
    };
    let resp = if method == "OPTIONS" {
        access::preflight(&req, &env)
    } else {
        match access::check_origin(&req, &env) {
            Err(e) => http::error(dialect, &e),
            Ok(origin) => {
                let resp = route(req, &method, path, &env, &ctx, &mut who).await.unwrap_or_else(|e| http::error(dialect, &e));
                if let Some(o) = origin {
                    access::add_cors(&resp, &o);
                }
                resp
            }
        }
    };
    let _ = resp.headers().set("x-request-id", &request_id);
    // One line per failed request (per request with N1_LOG_REQUESTS=all):
    // never headers, bodies or keys, only the key's name. Written on the next
    // turn of the event loop, after the reply has left (a log write costs the
    // reply ~0.1 ms when it comes first). A stale config is read again later
    // still: a reply takes a few ms more to reach the client through `wrangler
    // dev`'s proxies, and a KV read beside it delayed it by ~0.8 ms (a
    // stream's upstream calls are under way by then).
    let line = (resp.status() >= 400 || env::log_all_requests(&env)).then(|| {
        format!("{} {} {} {} {}ms {}", request_id, method, path, resp.status(), (js_sys::Date::now() - started) as u64, who)
    });
    let refresh = env::refresh_later(&env);
    if line.is_some() || refresh.is_some() {
        task::wait_until(&ctx, async move {
            if let Some(line) = line {
                let _ = promise::wait(&scheduler_wait(0.0)).await;
                console_log!("{line}");
            }
            if let Some(refresh) = refresh {
                let _ = promise::wait(&scheduler_wait(REFRESH_AFTER_MS)).await;
                refresh.await;
            }
        });
    }
    resp
}

/// How long after a reply a stale config is read again.
const REFRESH_AFTER_MS: f64 = 100.0;

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `scheduler.wait(ms)`: a promise for a later turn of the event loop
    /// (workerd's own timer, with no Wasm closure behind it).
    #[wasm_bindgen(js_namespace = scheduler, js_name = wait)]
    fn scheduler_wait(ms: f64) -> js_sys::Promise;
}

enum Route<'a> {
    Serve(Dialect),
    /// `POST /v1/messages/count_tokens` (Anthropic Messages).
    CountTokens,
    Models,
    Model(&'a str),
    Usage,
    /// `GET` or `DELETE /v1/responses/{id}`: a stored response.
    Response(&'a str),
}

/// The route of a path and method (an empty method: any); `/v1` is optional
/// (some clients are configured with the bare host as base URL).
fn route_of<'a>(path: &'a str, method: &str) -> std::result::Result<Route<'a>, N1Error> {
    let route = path.strip_prefix("/v1").unwrap_or(path);
    let (found, allowed) = match route {
        "/chat/completions" => (Route::Serve(Dialect::Chat), "POST"),
        "/responses" => (Route::Serve(Dialect::Responses), "POST"),
        "/models" => (Route::Models, "GET"),
        "/messages" => (Route::Serve(Dialect::Messages), "POST"),
        "/messages/count_tokens" => (Route::CountTokens, "POST"),
        "/n1/usage" => (Route::Usage, "GET"),
        _ => match (route.strip_prefix("/models/"), route.strip_prefix("/responses/")) {
            (Some(id), _) if !id.is_empty() => (Route::Model(id), "GET"),
            (_, Some(id)) if !id.is_empty() && !id.contains('/') => (Route::Response(id), "GET, DELETE"),
            _ => return Err(N1Error::NotFound(path.to_owned())),
        },
    };
    if !method.is_empty() && !allowed.split(", ").any(|m| m == method) {
        return Err(N1Error::MethodNotAllowed { method: method.to_owned(), allowed });
    }
    Ok(found)
}

async fn route(req: Request, method: &str, path: &str, env: &Env, ctx: &Context, who_label: &mut String) -> std::result::Result<Response, N1Error> {
    let route = route_of(path, method)?;
    // Who is calling comes before any config detail or upstream call.
    let config = env::config(env).await;
    let who = access::authenticate(&req, env, &config)?;
    who_label.clone_from(&who.label);
    let config = config?;
    access::rate_limit(&req, env, &who).await?;
    match route {
        Route::CountTokens => serve::count_tokens(req, env, &config, &who).await,
        Route::Models => Ok(models::list(&config, &who)),
        Route::Usage => budget::usage(env, &req, &who).await,
        Route::Model(id) => models::retrieve(&config, &who, &String::from_utf8_lossy(&crate::core::url::percent_decode(id))),
        Route::Serve(dialect) => serve::handle(dialect, req, env, ctx, config, &who).await,
        Route::Response(id) => store::respond(env, method, id, &who.label).await,
    }
}
