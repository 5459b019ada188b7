//! N-1 on Cloudflare Workers: one OpenAI-compatible endpoint that asks a panel
//! of models in parallel and has a summary model synthesize their answers.
//!
//! Pure modules (wire types, config, policy, prompt, SSE, usage) build on the
//! host and are unit-tested with `cargo test`; the edge glue below them exists
//! only in the wasm build.

pub mod config;
pub mod ensemble;
pub mod error;
pub mod prompt;
pub mod relay;
pub mod request;
pub mod response;
pub mod retry;
pub mod sse;
pub mod usage;

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
    use worker::{console_log, event, js_sys, Context, Env, Method, Request, Response, Result};

    use crate::error::N1Error;
    use crate::{chat, http, models};

    /// Every request enters here: route, run, map errors, tag with a request id.
    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
        let started = js_sys::Date::now();
        let request_id = http::random_id("req_");
        let method = req.method();
        let path = req.path();
        // `/v1` is optional: some clients are configured with the bare host as base URL.
        let route = path.strip_prefix("/v1").unwrap_or(&path);
        let result = match (route, &method) {
            ("/chat/completions", Method::Post) => chat::handle(req, env, &ctx).await,
            ("/models", Method::Get) => models::handle(&env).await,
            ("/chat/completions", m) => Err(N1Error::MethodNotAllowed { method: m.to_string(), allowed: "POST" }),
            ("/models", m) => Err(N1Error::MethodNotAllowed { method: m.to_string(), allowed: "GET" }),
            _ => Err(N1Error::NotFound(path.clone())),
        };
        let resp = result.unwrap_or_else(|e| http::error(&e));
        let _ = resp.headers().set("x-request-id", &request_id);
        // One line per request; never headers or bodies, which carry keys.
        console_log!(
            "{} {} {} {} {}ms",
            request_id,
            method.to_string(),
            path,
            resp.status_code(),
            (js_sys::Date::now() - started) as u64
        );
        Ok(resp)
    }
}
