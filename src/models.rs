//! Edge: `GET /v1/models`, the ensembles in OpenAI's list format.

use serde_json::{json, Value};
use worker::{Env, Response};

use crate::config;
use crate::error::N1Error;
use crate::{http, settings};

pub async fn handle(env: &Env) -> Result<Response, N1Error> {
    let cfg = settings::config(env).await?;
    let data: Vec<Value> = cfg
        .ensembles
        .iter()
        .map(|e| {
            json!({
                "id": e.name,
                "object": "model",
                "created": 0,
                "owned_by": "n1",
                "n1": config::describe(e),
            })
        })
        .collect();
    Ok(http::json(200, &json!({"object": "list", "data": data})))
}
