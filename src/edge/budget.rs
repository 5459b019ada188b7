//! Edge: budgets. The Durable Object `N1Budget` (one per key, bound as
//! `N1_BUDGET`) holds the key's `core::budget::Ledger` in its storage and
//! applies one operation at a time (`core::budget::apply`): the runtime
//! delivers a Durable Object's requests one by one while it reads and writes
//! its storage, so concurrent requests of a key are serialized. `Account` is
//! a request's side: reserve before the fan-out (one round trip, only for a
//! key with a budget), settle after the reply (dispatched before the reply
//! leaves, never awaited on its way). Bindings are called directly, as in
//! `kv.rs`.

use std::cell::RefCell;

use wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, web_sys, Env};

use super::access::header;
use super::env;
use super::promise;
use crate::core::auth::Principal;
use crate::core::budget::{self, Ledger, Limits};
use crate::core::cost::Spend;
use crate::core::error::N1Error;

const BINDING: &str = "N1_BUDGET";
const KEY: &str = "ledger";

/// A key's ledger, kept in memory and written through to storage.
#[wasm_bindgen::prelude::wasm_bindgen]
pub struct N1Budget {
    state: worker::worker_sys::DurableObjectState,
    ledger: RefCell<Option<Ledger>>,
}

#[wasm_bindgen::prelude::wasm_bindgen]
impl N1Budget {
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, _env: JsValue) -> N1Budget {
        N1Budget { state, ledger: RefCell::new(None) }
    }

    pub async fn fetch(&self, req: web_sys::Request) -> Result<JsValue, JsValue> {
        let reply = match self.serve(&req).await {
            Ok(reply) => super::http::json(200, reply.into_bytes()),
            Err(_) => super::http::json(500, br#"[]"#.to_vec()),
        };
        Ok(reply.into())
    }
}

impl N1Budget {
    async fn serve(&self, req: &web_sys::Request) -> Result<String, JsValue> {
        let op = promise::wait(&req.text()?).await?.as_string().unwrap_or_default();
        let storage = self.state.storage()?;
        if self.ledger.borrow().is_none() {
            let stored = promise::wait(&storage.get(KEY)?).await?.as_string().unwrap_or_default();
            self.ledger.borrow_mut().get_or_insert_with(|| Ledger::from_numbers(&budget::numbers(&stored)));
        }
        // Applied and written in one turn: nothing else runs in between.
        let (reply, text) = {
            let mut ledger = self.ledger.borrow_mut();
            let ledger = ledger.get_or_insert_with(Ledger::default);
            (budget::apply(ledger, &op), budget::numbers_json(&ledger.to_numbers()))
        };
        promise::wait(&storage.put(KEY, text.into())?).await?;
        Ok(reply)
    }
}

/// What a request spends, in its key's Durable Object.
pub struct Account {
    stub: JsValue,
    pub limits: Option<Limits>,
    /// The reservation's id (0: none made).
    hold: f64,
    /// The clock of the budget windows at the start, and `Date.now()` then.
    now0: f64,
    t0: f64,
}

impl Account {
    /// The account of `who`: `None` when nothing is counted (anonymous use
    /// without `N1_ANONYMOUS_BUDGET`, or no binding and no budget). A budget
    /// without the binding is a config error: never silently no limits.
    pub fn open(env: &Env, req: &web_sys::Request, who: &Principal) -> Result<Option<Account>, N1Error> {
        let Some(ns) = super::kv::namespace(env, BINDING) else {
            return match who.budget {
                Some(_) => Err(N1Error::Config(format!(
                    "a budget is configured for {}, but the Durable Object binding {BINDING} is missing (wrangler.toml: [[durable_objects.bindings]] and its migration), so it cannot be enforced",
                    who.label
                ))),
                None => Ok(None),
            };
        };
        if who.anonymous && who.budget.is_none() {
            return Ok(None);
        }
        let call = |target: &JsValue, f: &str, arg: &JsValue| -> Option<JsValue> {
            let f: js_sys::Function = js_sys::Reflect::get(target, &f.into()).ok()?.dyn_into().ok()?;
            f.call1(target, arg).ok()
        };
        let stub = call(&ns, "idFromName", &who.label.as_str().into())
            .and_then(|id| call(&ns, "get", &id))
            .ok_or_else(|| N1Error::Internal(format!("the {BINDING} binding is not a Durable Object namespace")))?;
        let t0 = js_sys::Date::now();
        // Test-only: the budget windows' clock (N1_ENABLE_TEST_HOOKS).
        let injected = env::flag(env, "N1_ENABLE_TEST_HOOKS").then(|| header(req, "x-n1-test-now")).flatten();
        let now0 = injected.and_then(|v| v.trim().parse::<u64>().ok()).map_or(t0, |ms| ms as f64);
        Ok(Some(Account { stub, limits: who.budget, hold: 0.0, now0, t0 }))
    }

    /// Milliseconds since the epoch, on the windows' clock.
    pub fn now(&self) -> f64 {
        self.now0 + (js_sys::Date::now() - self.t0)
    }

    /// `stub.fetch(…)` with one operation: dispatched at once.
    fn send(&self, op: &str) -> Option<js_sys::Promise> {
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&op.into());
        let f: js_sys::Function = js_sys::Reflect::get(&self.stub, &"fetch".into()).ok()?.dyn_into().ok()?;
        f.call2(&self.stub, &"https://n1-budget/".into(), &init).ok()?.dyn_into().ok()
    }

    /// One operation's reply (numbers; empty when the call failed).
    async fn call(&self, op: &str) -> Vec<f64> {
        let text = async {
            let resp: web_sys::Response = promise::wait(&self.send(op)?).await.ok()?.dyn_into().ok()?;
            promise::wait(&resp.text().ok()?).await.ok()?.as_string()
        };
        budget::numbers(&text.await.unwrap_or_default())
    }

    /// Hold what this request may cost, or refuse it (429) before any
    /// upstream call. Only keys with a budget reserve.
    pub async fn reserve(&mut self, need: &Spend, timeout_ms: u64) -> Result<(), N1Error> {
        let Some(limits) = self.limits else { return Ok(()) };
        let now = self.now();
        let id = (js_sys::Math::random() * 9e15).floor() + 1.0;
        // Unsettled (a request that never ended), the hold is charged after the request's ceiling.
        let expires = now + timeout_ms as f64 + 60_000.0;
        let reply = self.call(&budget::reserve_op(now, &limits, id, need, expires)).await;
        if reply.is_empty() {
            return Err(N1Error::Internal("the budget could not be checked".into()));
        }
        match budget::refusal(&reply) {
            Some(r) => Err(N1Error::OverBudget(r.message())),
            None => {
                self.hold = id;
                Ok(())
            }
        }
    }

    /// Settle what the request spent: dispatched now (so it reaches the
    /// Durable Object before the client sees the end of the reply), awaited by
    /// the caller off the reply's path.
    pub fn settle(&self, spent: &Spend) -> Option<js_sys::Promise> {
        self.send(&budget::settle_op(self.now(), self.hold, spent))
    }
}

/// `GET /v1/n1/usage`: what the calling key spent today and this month.
pub async fn usage(env: &Env, req: &web_sys::Request, who: &Principal) -> Result<super::http::Response, N1Error> {
    let name = who.key_name().ok_or(N1Error::MissingKey)?;
    let account = Account::open(env, req, who)?
        .ok_or_else(|| N1Error::Config(format!("GET /v1/n1/usage needs the Durable Object binding {BINDING} (wrangler.toml)")))?;
    let reply = account.call(&budget::usage_op(account.now())).await;
    if reply.is_empty() {
        return Err(N1Error::Internal("the usage could not be read".into()));
    }
    Ok(super::http::json(200, budget::report(&reply, &account.limits.unwrap_or_default(), name).into_bytes()))
}
