//! Edge: one handler for every inbound dialect. Reads and decodes the request,
//! picks the ensemble and its models, reserves against the key's budget, then
//! runs the ensemble with the fetch runtime in either output mode, encodes the
//! answer in the dialect, and settles what the calls cost (and writes the
//! metrics) whatever the outcome.

use std::rc::Rc;

use worker::{js_sys, web_sys::Request, Context, Env};

use super::access::header;
use super::body::{self, WriterSink};
use super::budget::Account;
use super::env::{self, Keys};
use super::fetch::FetchRuntime;
use super::http::{self, Response};
use super::metrics;
use super::promise;
use super::store;
use super::task;
use crate::core::auth::Principal;
use crate::core::budget;
use crate::core::config::Config;
use crate::core::dialects::{messages, Dialect, ReplyIds};
use crate::core::ensemble::{self, Out};
use crate::core::error::N1Error;

pub async fn handle(dialect: Dialect, req: Request, env: &Env, ctx: &Context, config: Rc<Config>, who: &Principal) -> Result<Response, N1Error> {
    let started = js_sys::Date::now();
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
    // The key's account (its Durable Object); a key with a budget reserves
    // what this request may cost, the one round trip before the fan-out.
    let mut account = Account::open(env, &req, who)?;
    if let Some(a) = account.as_mut().filter(|a| a.limits.is_some()) {
        let need = budget::estimate(&lineup, &request, bytes.len(), a.limits.is_some_and(|l| l.has_usd())).map_err(|model| {
            N1Error::Config(format!("model `{model}` has no `price`, so a USD budget cannot be enforced on ensemble `{}`: give it a price (USD per million tokens), or use a `tokens_per_day` budget", ens.name))
        })?;
        a.reserve(&need, ens.policy.request_timeout_ms).await?;
    }
    let key = who.key_name().unwrap_or("anonymous").to_owned();

    if !request.stream {
        let result = ensemble::complete(&rt, &lineup, &request).await;
        // Settled whatever the outcome (failed calls cost too), dispatched before the reply leaves.
        let outcome = result.as_ref().err().map_or("ok", |e| e.code().unwrap_or("error"));
        let stat = metrics::Request { ensemble: &ens.name, dialect: dialect.name(), stream: false, outcome, key: &key, started_ms: started };
        if let Some(done) = account_for(env, account.as_ref(), &rt, &stat) {
            let _ = ctx.as_ref().wait_until(&done);
        }
        let answer = result?;
        let reply = dialect.reply(&ids, &request, &answer);
        if request.store {
            store::save(env, &ids.id, &who.label, request.messages[own_input..].to_vec(), &answer.completion, &reply).await;
        }
        let resp = http::json(200, reply);
        let h = resp.headers();
        let _ = h.set("x-n1-ensemble", &ens.name);
        let _ = h.set("x-n1-panel", &format!("{}/{}", answer.meta.panel_ok, answer.meta.panel_total));
        let _ = h.set("x-n1-degraded", if answer.meta.degraded { "true" } else { "false" });
        if answer.fallback {
            let _ = h.set("x-n1-fallback", "best_panel_answer");
        }
        if let Some(usd) = answer.meta.cost_usd {
            let _ = h.set("x-n1-cost-usd", &budget::usd_text(usd, 12));
        }
        return Ok(resp);
    }

    // Headers leave now; the panel and the summary write into the stream,
    // which outlives this call (hence the config held by an Rc, not borrowed).
    // What worker/entry.mjs writes should the instance die mid-stream: the dialect's error event.
    let mut on_crash = Vec::new();
    dialect.encoder(&ids, &request).fail(&N1Error::Internal("the worker failed while handling this request.".into()), &mut on_crash);
    let Some((readable, writer)) = body::reply_stream(&on_crash) else {
        // Nothing was spent: the reservation is released.
        let _ = account.as_ref().and_then(|a| a.settle(&Default::default()));
        return Err(N1Error::Internal("could not create a stream".into()));
    };
    let test_panic = env::flag(env, "N1_ENABLE_TEST_HOOKS") && header(&req, "x-n1-test-panic").as_deref() == Some("stream");
    let resp = http::stream(
        &readable,
        &[("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), ("x-accel-buffering", "no"), ("x-n1-ensemble", &ens.name)],
    );
    let name = ens.name.clone();
    let (env, owner) = (env.clone(), who.label.clone());
    task::wait_until(ctx, async move {
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
        out.meter = Some(&rt.meter);
        ensemble::stream(&rt, &lineup, &request, &mut out).await;
        let (finished, answer, ending) = (out.finished, out.answer.take(), out.ending.take());
        // Settled however the stream ended (cut, failed, or the client left).
        let outcome = if finished { "ok" } else { "incomplete" };
        let stat = metrics::Request { ensemble: &name, dialect: dialect.name(), stream: true, outcome, key: &key, started_ms: started };
        let done = account_for(&env, account.as_ref(), &rt, &stat).map(|p| promise::wait(&p));
        // Stored before the stream closes: a client that read it to its end can continue it.
        if let (true, Some(completion), Some((meta, usage))) = (finished, answer, ending) {
            // The object of the closing event, as a non-streaming reply would have it.
            let answer = ensemble::Answer { completion, usage, meta, fallback: false };
            let reply = dialect.reply(&ids, &request, &answer);
            store::save(&env, &ids.id, &owner, request.messages.split_off(own_input), &answer.completion, &reply).await;
        }
        let _ = promise::wait(&sink.writer.close()).await;
        if let Some(done) = done {
            let _ = done.await;
        }
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

/// Settle what the calls cost in the key's account and write the metrics:
/// dispatched now; the promise resolves when both are done (none when there
/// is neither an account nor a metrics binding: nothing to wait for).
fn account_for(env: &Env, account: Option<&Account>, rt: &FetchRuntime, stat: &metrics::Request) -> Option<js_sys::Promise> {
    let all = js_sys::Array::new();
    if let Some(settled) = account.and_then(|a| a.settle(&rt.meter.spend())) {
        all.push(&settled);
    }
    metrics::write(env, &rt.meter, stat, &all);
    (all.length() > 0).then(|| js_sys::Promise::all(&all))
}
