//! Edge: one handler for every inbound dialect. Reads and decodes the request,
//! picks the ensemble and its models, then runs the ensemble with the fetch
//! runtime in either output mode and encodes the answer in the dialect.

use std::rc::Rc;

use worker::{js_sys, web_sys::Request, Context, Env, Response, ResponseBuilder};

use super::access::header;
use super::body::{self, WriterSink};
use super::env::{self, Keys};
use super::fetch::FetchRuntime;
use super::http;
use super::store;
use crate::core::auth::Principal;
use crate::core::config::Config;
use crate::core::dialects::{messages, Dialect, ReplyIds};
use crate::core::ensemble::{self, Out};
use crate::core::error::N1Error;

pub async fn handle(dialect: Dialect, req: Request, env: &Env, ctx: &Context, config: Rc<Config>, who: &Principal) -> Result<Response, N1Error> {
    let bytes = body::read(&req, env::max_body_bytes(env)).await?;
    let mut request = dialect.decode(&bytes)?;
    // A continued conversation: the stored one goes after this request's
    // instructions, in front of its new input.
    let own_input = request.echo.contains_key("instructions") as usize;
    if let Some(previous) = request.previous.clone() {
        let history = store::load(env, &previous, &who.label).await?;
        request.messages.splice(own_input..own_input, history);
    }
    request.check_limits(&env::limits(env))?;
    // Progress events and the direct route may also be asked for with headers,
    // for clients that cannot add body fields.
    let on = |name: &str| header(&req, name).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
    request.progress |= on("x-n1-progress");
    request.direct |= on("x-n1-direct");
    let ens = config.ensemble(request.model.as_deref()).ok_or_else(|| N1Error::ModelNotFound(request.model.clone().unwrap_or_default()))?;
    who.check(&ens.name)?;
    // Requests with images go to the ensemble's vision models.
    let has_images = request.has_images();
    let route = ensemble::route(ens, &request);
    let lineup = ens.lineup(has_images, route)?;
    let keys = Keys::resolve(env, lineup.panel.iter().chain(lineup.summary))?;
    let secrets = keys.secrets(ens);
    let ai = js_sys::Reflect::get(env, &"AI".into()).ok().filter(|v| !v.is_undefined());
    let rt = FetchRuntime::new(keys, secrets, ai);
    let ids = ReplyIds { id: http::random_id(dialect.id_prefix()), created: (js_sys::Date::now() / 1000.0) as u64, model: ens.name.clone() };

    if !request.stream {
        let answer = ensemble::complete(&rt, &lineup, &request).await?;
        if request.store {
            store::save(env, &ids.id, &who.label, request.messages[own_input..].to_vec(), &answer.completion).await;
        }
        let resp = http::json(200, dialect.reply(&ids, &request, &answer));
        let h = resp.headers();
        let _ = h.set("x-n1-ensemble", &ens.name);
        let _ = h.set("x-n1-panel", &format!("{}/{}", answer.meta.panel_ok, answer.meta.panel_total));
        let _ = h.set("x-n1-degraded", if answer.meta.degraded { "true" } else { "false" });
        if answer.fallback {
            let _ = h.set("x-n1-fallback", "best_panel_answer");
        }
        return Ok(resp);
    }

    // Headers leave now; the panel and the summary write into the stream,
    // which outlives this call (hence the config held by an Rc, not borrowed).
    // What worker/entry.mjs writes should the instance die mid-stream: the dialect's error event.
    let mut on_crash = Vec::new();
    dialect.encoder(&ids, &request).fail(&N1Error::Internal("the worker failed while handling this request.".into()), &mut on_crash);
    let (readable, writer) = body::reply_stream(&on_crash).ok_or_else(|| N1Error::Internal("could not create a stream".into()))?;
    let test_panic = env::flag(env, "N1_ENABLE_TEST_HOOKS") && header(&req, "x-n1-test-panic").as_deref() == Some("stream");
    let resp = ResponseBuilder::new()
        .with_status(200)
        .with_header("content-type", "text/event-stream; charset=utf-8")
        .and_then(|b| b.with_header("cache-control", "no-cache"))
        .and_then(|b| b.with_header("x-accel-buffering", "no"))
        .and_then(|b| b.with_header("x-n1-ensemble", &ens.name))
        .map_err(|_| N1Error::Internal("could not build headers".into()))?
        .stream(readable);
    let name = ens.name.clone();
    let (env, owner) = (env.clone(), who.label.clone());
    ctx.wait_until(async move {
        if test_panic {
            panic!("test hook: deliberate panic mid-stream");
        }
        // Found again by name (it is there: `config` is the same Rc).
        let Some(lineup) = config.ensemble(Some(&name)).and_then(|e| e.lineup(has_images, route).ok()) else { return };
        let mut enc = dialect.encoder(&ids, &request);
        let mut sink = WriterSink { writer };
        let progress = request.progress || lineup.ens.policy.progress;
        let mut out = Out::new(enc.as_mut(), &mut sink, progress);
        out.answer = request.store.then(Default::default);
        ensemble::stream(&rt, &lineup, &request, &mut out).await;
        // Stored before the stream closes: a client that read it to its end can continue it.
        if let (true, Some(answer)) = (out.finished, out.answer.take()) {
            store::save(&env, &ids.id, &owner, request.messages.split_off(own_input), &answer).await;
        }
        let _ = wasm_bindgen_futures::JsFuture::from(sink.writer.close()).await;
    });
    Ok(resp)
}

/// `POST /v1/messages/count_tokens`: Anthropic's token count, as an estimate
/// (`messages::count_tokens`), for an ensemble the key may use. No upstream is called.
pub async fn count_tokens(req: Request, env: &Env, config: &Config, who: &Principal) -> Result<Response, N1Error> {
    let bytes = body::read(&req, env::max_body_bytes(env)).await?;
    let request = messages::decode_count(&bytes)?;
    let ens = config.ensemble(request.model.as_deref()).ok_or_else(|| N1Error::ModelNotFound(request.model.clone().unwrap_or_default()))?;
    who.check(&ens.name)?;
    Ok(http::json(200, format!("{{\"input_tokens\":{}}}", messages::count_tokens(&request)).into_bytes()))
}
