//! Edge: `GET /v1/models` and `GET /v1/models/{id}`, the ensembles in OpenAI's
//! model format.

use serde_json::{json, Value};
use worker::Response;

use crate::auth::Principal;
use crate::config::{self, Config, Ensemble};
use crate::error::N1Error;
use crate::http;

fn model_object(cfg: &Config, e: &Ensemble) -> Value {
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
}

/// Only the ensembles the caller's key may use.
pub fn list(cfg: &Config, who: &Principal) -> Response {
    let data: Vec<Value> = cfg.ensembles.iter().filter(|e| who.may_use(&e.name)).map(|e| model_object(cfg, e)).collect();
    http::json(200, &json!({"object": "list", "data": data}))
}

/// One ensemble (the SDKs' `models.retrieve`); one the key may not use is as
/// unknown as one that does not exist, as in the list.
pub fn retrieve(cfg: &Config, who: &Principal, id: &str) -> Result<Response, N1Error> {
    let e = cfg.ensembles.iter().find(|e| e.name == id && who.may_use(&e.name)).ok_or_else(|| N1Error::ModelNotFound(id.to_owned()))?;
    Ok(http::json(200, &model_object(cfg, e)))
}
