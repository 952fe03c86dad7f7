//! `/api/queues`: list with statistics, show, declare, delete, purge.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiResult;
use super::AdminState;
use crate::definitions::QueueSpec;
use crate::queue::{ConsumerOptions, QueueName};

/// One queue as the API and the CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub name: String,
    /// Stored messages: ready, delayed and unacknowledged.
    pub messages: u64,
    pub ready: u64,
    pub unacked: u64,
    pub delayed: u64,
    pub consumers: u64,
    /// Messages this queue dead-lettered since the broker started.
    pub dead_lettered: u64,
    pub published_total: u64,
    pub delivered_total: u64,
    pub publish_rate: f64,
    pub deliver_rate: f64,
    /// Age of the oldest stored message, milliseconds; `None` when empty.
    pub oldest_message_age_ms: Option<u64>,
    pub config: QueueSpec,
}

pub(super) fn queue_name(name: &str) -> ApiResult<QueueName> {
    Ok(QueueName::new(name.to_owned())?)
}

pub(super) fn view(state: &AdminState, name: &QueueName) -> ApiResult<QueueView> {
    let queues = state.broker().queues();
    let s = queues.stats(name)?;
    let config = queues.config(name)?;
    // The age of the oldest message is read from the embedded store's log; JetStream's
    // stream info does not say when its first message was published by Switchyard.
    let oldest = match queues.embedded() {
        Ok(q) => q
            .oldest_enqueued_ms(name)?
            .map(|t| q.clock().now_ms().saturating_sub(t)),
        Err(_) => None,
    };
    let rates = state.inner.rates.get(name.as_str());
    Ok(QueueView {
        name: name.to_string(),
        messages: s.messages,
        ready: s.messages.saturating_sub(s.unacked + s.delayed),
        unacked: s.unacked,
        delayed: s.delayed,
        consumers: s.consumers,
        dead_lettered: s.dead_lettered_total,
        published_total: s.published_total,
        delivered_total: s.delivered_total,
        publish_rate: rates.publish_per_s,
        deliver_rate: rates.deliver_per_s,
        oldest_message_age_ms: oldest,
        config: QueueSpec::from_config(name.as_str(), &config),
    })
}

pub async fn list(State(state): State<AdminState>) -> ApiResult<Json<Vec<QueueView>>> {
    let names = state.broker().queues().list();
    // A queue deleted between list and stats is skipped, not an error.
    Ok(Json(
        names.iter().filter_map(|n| view(&state, n).ok()).collect(),
    ))
}

pub async fn show(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(view(&state, &queue_name(&name)?)?))
}

/// Declare with the body's policies (all optional). 201 when created, 200 when it existed
/// with the same policies, 409 when it exists with others.
pub async fn declare(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Option<Json<QueueSpec>>,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    let mut spec = body.map(|Json(s)| s).unwrap_or_default();
    spec.name = name;
    let (name, config) = spec.to_config()?;
    let existed = state.broker().queues().exists(name.as_str());
    state.broker().declare_queue(&name, config)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&state, &name)?)))
}

pub async fn delete(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let queue = queue_name(&name)?;
    state.inner.pulls.lock().remove(&name);
    let deleted = state.broker().delete_queue(&queue)?;
    Ok(Json(json!({ "queue": name, "messages_deleted": deleted })))
}

/// Remove every ready message; messages in flight to consumers stay (as in RabbitMQ).
pub async fn purge(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let queue = queue_name(&name)?;
    let consumer = state.broker().queues().embedded()?.consume(
        &queue,
        ConsumerOptions {
            prefetch: 0,
            push: false,
        },
    )?;
    let mut purged = 0u64;
    while let Some(d) = consumer.get()? {
        consumer.ack(d.tag, false)?;
        purged += 1;
    }
    Ok(Json(json!({ "queue": name, "purged": purged })))
}
