//! Edge: `GET /v1/models`, the ensembles in OpenAI's list format.

use serde_json::{json, Value};
use worker::Response;

use crate::auth::Principal;
use crate::config::{self, Config};
use crate::http;

/// Only the ensembles the caller's key may use.
pub fn handle(cfg: &Config, who: &Principal) -> Response {
    let data: Vec<Value> = cfg
        .ensembles
        .iter()
        .filter(|e| who.may_use(&e.name))
        .map(|e| {
            let mut n1 = config::describe(e);
            // The ensemble a request without `model` gets (the chat page preselects it).
            n1["default"] = (e.name == cfg.default_ensemble).into();
            json!({
                "id": e.name,
                "object": "model",
                "created": 0,
                "owned_by": "n1",
                "n1": n1,
            })
        })
        .collect();
    http::json(200, &json!({"object": "list", "data": data}))
}
