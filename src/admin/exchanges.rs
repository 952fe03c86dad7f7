//! `/api/exchanges` and `/api/bindings`: the topology, publishing and dry runs.
//!
//! The default exchange `""` is `amq.default` in paths (a path segment cannot be empty).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::message_json::message_from_json;
use super::AdminState;
use crate::definitions::{BindingSpec, ExchangeSpec};
use crate::queue::PublishOutcome;

/// The path name of the default exchange.
pub const DEFAULT_EXCHANGE: &str = "amq.default";

fn exchange_name(path: &str) -> &str {
    if path == DEFAULT_EXCHANGE {
        ""
    } else {
        path
    }
}

fn spec_json(spec: &ExchangeSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or_default();
    if spec.name.is_empty() {
        v["name"] = json!(DEFAULT_EXCHANGE);
    }
    v
}

pub async fn list(State(state): State<AdminState>) -> Json<Vec<Value>> {
    let topology = state.broker().topology();
    let mut specs: Vec<_> = topology
        .exchanges()
        .map(ExchangeSpec::from_exchange)
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Json(specs.iter().map(spec_json).collect())
}

pub async fn show(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let topology = state.broker().topology();
    let x = topology
        .exchange(exchange_name(&name))
        .ok_or_else(|| ApiError::not_found(format!("no exchange named {name:?}")))?;
    let bindings: Vec<_> = topology
        .bindings()
        .filter(|b| *b.source == *x.name)
        .map(BindingSpec::from_binding)
        .collect();
    let mut v = spec_json(&ExchangeSpec::from_exchange(x));
    v["bindings"] = json!(bindings);
    Ok(Json(v))
}

pub async fn declare(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(mut spec): Json<ExchangeSpec>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    spec.name = name;
    let created = state.broker().declare_exchange(spec.to_exchange()?)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(spec_json(&spec))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteQuery {
    if_unused: bool,
}

pub async fn delete(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    state
        .broker()
        .delete_exchange(exchange_name(&name), q.if_unused)?;
    Ok(Json(json!({ "deleted": name })))
}

pub async fn bindings(State(state): State<AdminState>) -> Json<Vec<BindingSpec>> {
    let topology = state.broker().topology();
    Json(topology.bindings().map(BindingSpec::from_binding).collect())
}

pub async fn bind(
    State(state): State<AdminState>,
    Json(spec): Json<BindingSpec>,
) -> ApiResult<(StatusCode, Json<BindingSpec>)> {
    state.broker().bind(spec.to_binding()?)?;
    Ok((StatusCode::CREATED, Json(spec)))
}

pub async fn unbind(
    State(state): State<AdminState>,
    Json(spec): Json<BindingSpec>,
) -> ApiResult<Json<Value>> {
    state.broker().unbind(&spec.to_binding()?)?;
    Ok(Json(json!({ "unbound": spec })))
}

fn routing(body: &Value) -> ApiResult<(String, bool)> {
    let key = match body.get("routing_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let mandatory = body
        .get("mandatory")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((key, mandatory))
}

/// Publish one message. Returns once it is durable in every queue it went to: its id, the
/// queues, what each queue did with its copy, and the full routing decision.
pub async fn publish(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let (key, mandatory) = routing(&body)?;
    let message = message_from_json(body, &["routing_key", "mandatory"])?;
    let id = message.id.as_str().to_owned();
    let published = state
        .broker()
        .publish(exchange_name(&name), &key, message, mandatory)
        .await?;
    let outcomes: Vec<Value> = published
        .decision
        .outputs
        .iter()
        .zip(&published.outcomes)
        .map(|(o, r)| {
            let outcome = match r {
                PublishOutcome::Enqueued { .. } => "stored",
                PublishOutcome::Duplicate => "duplicate",
                PublishOutcome::RejectedMaxLength => "rejected: queue full",
            };
            json!({ "queue": o.queue, "outcome": outcome, "reason": o.reason })
        })
        .collect();
    let d = &published.decision;
    Ok(Json(json!({
        "message_id": id,
        "routed": !d.outputs.is_empty(),
        "queues": d.queues().collect::<Vec<_>>(),
        "outcomes": outcomes,
        "dropped": d.dropped,
        "returned": d.returned,
        "unroutable": d.unroutable,
        "decision": d,
    })))
}

/// Route without storing anything: the full decision (plugin steps, outputs, drops).
pub async fn dry_run(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let (key, _) = routing(&body)?;
    let message = message_from_json(body, &["routing_key", "mandatory"])?;
    let decision = state
        .broker()
        .dry_run(exchange_name(&name), &key, message)
        .await?;
    Ok(Json(json!(decision)))
}
