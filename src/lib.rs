//! N-1 on Cloudflare Workers: one OpenAI-compatible endpoint that asks a panel
//! of models in parallel and has a summary model synthesize their answers.
//!
//! Pure modules (wire types, config, policy, prompt, SSE, usage) build on the
//! host and are unit-tested with `cargo test`; the edge glue below them exists
//! only in the wasm build.

pub mod anthropic;
pub mod auth;
pub mod config;
pub mod cors;
pub mod ensemble;
pub mod error;
pub mod prompt;
pub mod relay;
pub mod request;
pub mod response;
pub mod retry;
pub mod sse;
pub mod url;
pub mod usage;
pub mod workers_ai;

#[cfg(target_arch = "wasm32")]
mod access;
#[cfg(target_arch = "wasm32")]
mod chat;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod models;
#[cfg(target_arch = "wasm32")]
mod settings;
#[cfg(target_arch = "wasm32")]
mod upstream;

#[cfg(target_arch = "wasm32")]
mod entry {
    use worker::{console_log, event, js_sys, web_sys::Request, Context, Env, Response, Result};

    use crate::error::N1Error;
    use crate::{access, chat, http, models, settings};

    /// Every request enters here: CORS, then the route, errors mapped to
    /// OpenAI error objects in one place, a request id on every reply. The raw
    /// `web_sys::Request`: workers-rs' wrapper would read `request.cf` (an
    /// object built per access) on every request.
    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
        let started = js_sys::Date::now();
        let request_id = http::random_id("req_");
        let method = req.method();
        let url = req.url();
        let path = crate::url::path_of(&url);
        let mut who = String::from("-");
        // Test-only (off unless the operator sets N1_ENABLE_TEST_HOOKS): proves
        // that a panic, even in the first request of a fresh instance and
        // before any routing, still ends in a JSON error.
        if settings::flag(&env, "N1_ENABLE_TEST_HOOKS") && access::header(&req, "x-n1-test-panic").as_deref() == Some("now") {
            panic!("test hook: deliberate panic");
        }
        let resp = if method == "OPTIONS" {
            access::preflight(&req, &env)
        } else {
            match access::check_origin(&req, &env) {
                Err(e) => http::error(&e),
                Ok(origin) => {
                    let resp = route(req, &method, path, &env, &ctx, &mut who).await.unwrap_or_else(|e| http::error(&e));
                    if let Some(o) = origin {
                        access::add_cors(&resp, &o);
                    }
                    resp
                }
            }
        };
        let _ = resp.headers().set("x-request-id", &request_id);
        // One line per request (or per failed request, with N1_LOG_REQUESTS=errors):
        // never headers, bodies or keys, only the key's name.
        // Written on the next turn of the event loop, after the reply has left:
        // a log write costs the reply ~0.1 ms when it comes first.
        if resp.status_code() >= 400 || settings::log_all_requests(&env) {
            let line = format!(
                "{} {} {} {} {}ms {}",
                request_id,
                method,
                path,
                resp.status_code(),
                (js_sys::Date::now() - started) as u64,
                who
            );
            ctx.wait_until(async move {
                worker::Delay::from(std::time::Duration::ZERO).await;
                console_log!("{line}");
            });
        }
        Ok(resp)
    }

    /// Tell worker/entry.mjs about a panic: the trapped instance cannot settle
    /// its requests, so the wrapper fails them with OpenAI-shaped errors.
    /// Installed once per instance, when the Wasm module starts, so that a panic
    /// in any request (a preflight included) reaches the entry.
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

    async fn route(req: Request, method: &str, path: &str, env: &Env, ctx: &Context, who_label: &mut String) -> std::result::Result<Response, N1Error> {
        // `/v1` is optional: some clients are configured with the bare host as base URL.
        let route = path.strip_prefix("/v1").unwrap_or(path);
        let model_id = route.strip_prefix("/models/").filter(|id| !id.is_empty());
        match (route, method) {
            ("/chat/completions", "POST") | ("/models", "GET") => {}
            _ if model_id.is_some() && method == "GET" => {}
            ("/chat/completions", m) => return Err(N1Error::MethodNotAllowed { method: m.to_owned(), allowed: "POST" }),
            (_, m) if route == "/models" || model_id.is_some() => {
                return Err(N1Error::MethodNotAllowed { method: m.to_owned(), allowed: "GET" })
            }
            _ => return Err(N1Error::NotFound(path.to_owned())),
        }
        // Who is calling comes before any config detail or upstream call.
        let config = settings::config(env).await;
        let who = access::authenticate(&req, env, &config)?;
        *who_label = who.label.clone();
        let config = config?;
        access::rate_limit(&req, env, &who).await?;
        match (route, model_id) {
            ("/models", _) => Ok(models::list(&config, &who)),
            (_, Some(id)) => {
                let id = String::from_utf8_lossy(&crate::url::percent_decode(id)).into_owned();
                models::retrieve(&config, &who, &id)
            }
            _ => chat::handle(req, env, ctx, &config, &who).await,
        }
    }
}
