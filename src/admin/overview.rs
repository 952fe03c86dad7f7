//! `/api/overview`, `/api/connections`, `/api/consumers`, `/healthz`, `/readyz`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AdminState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 once startup (definitions, plugin directory) is done; 503 before and during shutdown.
pub async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    if state.inner.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting or stopping" })),
        )
    }
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}: see README.md, \"HTTP admin API\", for the endpoints",
        uri.path()
    ))
}

pub async fn overview(State(state): State<AdminState>) -> Json<Value> {
    let broker = state.broker();
    let queues = broker.queues();
    let (mut messages, mut unacked) = (0u64, 0u64);
    let names = queues.list();
    for name in &names {
        if let Ok(s) = queues.stats(name) {
            messages += s.messages;
            unacked += s.unacked;
        }
    }
    let c = broker.counters();
    let (connections, consumers) = match &state.inner.amqp {
        Some(r) => (r.connections().len(), r.consumers().len()),
        None => (0, 0),
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.inner.started.elapsed().as_secs(),
        "data_dir": broker.data_dir(),
        "queues": names.len(),
        "exchanges": broker.topology().exchanges().count(),
        "plugins": broker.plugins().list().len(),
        "messages": messages,
        "unacked": unacked,
        "connections": connections,
        "consumers": consumers,
        "storage_bytes": queues.size_on_disk().ok(),
        "publishes": {
            "total": c.published.load(Ordering::Relaxed),
            "unroutable": c.unroutable.load(Ordering::Relaxed),
            "returned": c.returned.load(Ordering::Relaxed),
            "dropped": c.dropped.load(Ordering::Relaxed),
            "rejected": c.rejected.load(Ordering::Relaxed),
        },
        "dead_letter_queue": broker.special_queues().dead_letter,
    }))
}

pub async fn connections(State(state): State<AdminState>) -> Json<Value> {
    let list = state
        .inner
        .amqp
        .as_ref()
        .map(|r| r.connections())
        .unwrap_or_default();
    Json(json!(list))
}

pub async fn consumers(State(state): State<AdminState>) -> Json<Value> {
    let list = state
        .inner
        .amqp
        .as_ref()
        .map(|r| r.consumers())
        .unwrap_or_default();
    Json(json!(list))
}
