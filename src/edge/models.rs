//! Edge: `GET /v1/models` and `GET /v1/models/{id}`, the ensembles in OpenAI's
//! model format.

use serde::Serialize;

use super::http::{self, Response};
use crate::core::auth::Principal;
use crate::core::config::{Config, Ensemble, EnsembleInfo};
use crate::core::error::N1Error;

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    n1: EnsembleInfo<'a>,
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

fn model<'a>(cfg: &Config, e: &'a Ensemble) -> Model<'a> {
    Model { id: &e.name, object: "model", created: 0, owned_by: "n1", n1: e.info(cfg) }
}

/// Only the ensembles the caller's key may use.
pub fn list(cfg: &Config, who: &Principal) -> Response {
    let data = cfg.ensembles.iter().filter(|e| who.may_use(&e.name)).map(|e| model(cfg, e)).collect();
    http::json(200, serde_json::to_vec(&List { object: "list", data }).unwrap_or_default())
}

/// One ensemble (the SDKs' `models.retrieve`); one the key may not use is as
/// unknown as one that does not exist, as in the list.
pub fn retrieve(cfg: &Config, who: &Principal, id: &str) -> Result<Response, N1Error> {
    let e = cfg.ensembles.iter().find(|e| e.name == id && who.may_use(&e.name)).ok_or_else(|| N1Error::ModelNotFound(id.to_owned()))?;
    Ok(http::json(200, serde_json::to_vec(&model(cfg, e)).unwrap_or_default()))
}
