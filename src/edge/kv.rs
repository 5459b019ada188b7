//! Edge: Workers KV through the binding's own `get`/`put`/`delete` (workers-rs' KV
//! wrapper serializes its options through serde-wasm-bindgen: more Wasm than
//! these calls need).

use wasm_bindgen::{JsCast, JsValue};
use worker::{js_sys, Env};

use super::promise;

/// The namespace bound as `name`, if the worker has it.
pub fn namespace(env: &Env, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(env, &name.into()).ok().filter(|v| v.is_object())
}

fn method(ns: &JsValue, name: &str) -> Result<js_sys::Function, ()> {
    js_sys::Reflect::get(ns, &name.into()).map_err(|_| ())?.dyn_into().map_err(|_| ())
}

/// `get(key)` as text; `Ok(None)` when there is no value.
pub async fn get(ns: &JsValue, key: &str) -> Result<Option<String>, ()> {
    let promise: js_sys::Promise = method(ns, "get")?.call1(ns, &key.into()).map_err(|_| ())?.dyn_into().map_err(|_| ())?;
    Ok(promise::wait(&promise).await.map_err(|_| ())?.as_string())
}

/// `put(key, value, {expirationTtl})`.
pub async fn put(ns: &JsValue, key: &str, value: &str, ttl_s: u64) -> Result<(), ()> {
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"expirationTtl".into(), &(ttl_s as f64).into()).map_err(|_| ())?;
    let promise: js_sys::Promise = method(ns, "put")?.call3(ns, &key.into(), &value.into(), &options).map_err(|_| ())?.dyn_into().map_err(|_| ())?;
    promise::wait(&promise).await.map(|_| ()).map_err(|_| ())
}

/// `delete(key)`.
pub async fn delete(ns: &JsValue, key: &str) -> Result<(), ()> {
    let promise: js_sys::Promise = method(ns, "delete")?.call1(ns, &key.into()).map_err(|_| ())?.dyn_into().map_err(|_| ())?;
    promise::wait(&promise).await.map(|_| ()).map_err(|_| ())
}
