//! `/api/definitions`: export the running topology; import (apply) a definitions document.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiResult;
use super::AdminState;
use crate::definitions::Definitions;

pub async fn export(State(state): State<AdminState>) -> Json<Definitions> {
    Json(Definitions::export(state.broker()))
}

/// Apply a document. Plugins must already be deployed (a `file` would name a path on the
/// broker's machine, which an HTTP client has no business choosing): upload them first.
pub async fn import(
    State(state): State<AdminState>,
    Json(defs): Json<Definitions>,
) -> ApiResult<Json<Value>> {
    if let Some(p) = defs.plugins.iter().find(|p| p.file.is_some()) {
        return Err(super::ApiError::bad_request(format!(
            "plugin {}: `file` is not accepted over HTTP; upload it with PUT /api/plugins/{}",
            p.name, p.name
        )));
    }
    if !defs.users.is_empty() || !defs.permissions.is_empty() {
        return Err(super::ApiError::bad_request(
            "users and permissions are read from the definitions file at start \
             (`definitions` setting); put them there and restart",
        ));
    }
    let broker = state.broker().clone();
    let counts = json!({
        "plugins": defs.plugins.len(),
        "queues": defs.queues.len(),
        "exchanges": defs.exchanges.len(),
        "bindings": defs.bindings.len(),
    });
    tokio::task::spawn_blocking(move || defs.apply(&broker, std::path::Path::new("."))).await??;
    Ok(Json(json!({ "applied": counts })))
}
