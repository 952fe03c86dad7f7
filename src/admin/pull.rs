//! Pull consumption over HTTP: `get` takes messages, `ack`/`nack` settle them by tag.
//!
//! Each queue has one pull consumer (created on first `get`), so tags are per queue and stay
//! valid across requests. Taken messages are in flight until settled; deleting the queue or
//! stopping the broker returns them.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::message_json::message_to_json;
use super::queues::queue_name;
use super::AdminState;
use crate::queue::ConsumerOptions;

/// Largest `count` one `get` takes.
const MAX_BATCH: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GetRequest {
    /// How many messages at most (default 1).
    count: Option<usize>,
    /// Settle at once: the messages leave the queue as they are returned.
    ack: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    tags: Vec<u64>,
    /// For `nack`: return the messages to the queue (default) or dead-letter them.
    #[serde(default = "yes")]
    requeue: bool,
}

fn yes() -> bool {
    true
}

pub async fn get(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Option<Json<GetRequest>>,
) -> ApiResult<Json<Value>> {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let count = req.count.unwrap_or(1).clamp(1, MAX_BATCH);
    let queue = queue_name(&name)?;
    let mut pulls = state.inner.pulls.lock();
    let consumer = match pulls.entry(name.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(state.broker().queues().embedded()?.consume(
                &queue,
                ConsumerOptions {
                    prefetch: 0,
                    push: false,
                },
            )?)
        }
    };
    let mut out = Vec::new();
    while out.len() < count {
        let Some(d) = consumer.get()? else { break };
        if req.ack {
            consumer.ack(d.tag, false)?;
        }
        out.push(json!({
            "tag": d.tag,
            "redelivered": d.redelivered,
            "delivery_count": d.delivery_count,
            "message": message_to_json(&d.message),
        }));
    }
    Ok(Json(json!({ "queue": name, "messages": out })))
}

fn settle(
    state: &AdminState,
    name: &str,
    tags: &[u64],
    f: impl Fn(&crate::queue::Consumer, u64) -> Result<usize, crate::queue::QueueError>,
) -> ApiResult<usize> {
    let pulls = state.inner.pulls.lock();
    let consumer = pulls.get(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no messages taken from queue {name:?} over HTTP: POST /api/queues/{name}/get first"
        ))
    })?;
    let mut n = 0;
    for &tag in tags {
        n += f(consumer, tag)?;
    }
    Ok(n)
}

pub async fn ack(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(req): Json<Settle>,
) -> ApiResult<Json<Value>> {
    let n = settle(&state, &name, &req.tags, |c, t| c.ack(t, false))?;
    Ok(Json(json!({ "queue": name, "acked": n })))
}

pub async fn nack(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Json(req): Json<Settle>,
) -> ApiResult<Json<Value>> {
    let requeue = req.requeue;
    let n = settle(&state, &name, &req.tags, |c, t| c.nack(t, false, requeue))?;
    Ok(Json(
        json!({ "queue": name, "nacked": n, "requeued": requeue }),
    ))
}
