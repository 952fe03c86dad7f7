//! `/api/dead-letters`: browse a dead-letter queue with the reason each message died, and
//! redrive it to where its messages came from.
//!
//! Two kinds of dead letters meet here: the broker's (`switchyard.dead-letter`, plugin
//! failures; reason in `x-switchyard-reason`, origin in `x-switchyard-exchange`/`-routing-key`)
//! and the queue engine's (a queue's own dead-letter queue; `x-death` records). Redrive sends
//! the first kind through routing again (`Broker::replay`, so a fixed plugin decides anew) and
//! moves the second back to the queue each died in (`Queues::redrive`).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiResult;
use super::message_json::message_to_json;
use super::queues::queue_name;
use super::AdminState;
use crate::broker::{EXCHANGE_HEADER, REASON_HEADER, ROUTING_KEY_HEADER};
use crate::message::Message;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// The dead-letter queue; default: the broker's.
    queue: Option<String>,
    limit: Option<usize>,
}

fn header(m: &Message, name: &str) -> Option<String> {
    m.headers
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// Why a message was dead-lettered, from whichever record it carries.
fn reason(m: &Message) -> Option<String> {
    header(m, REASON_HEADER)
        .or_else(|| header(m, "x-last-death-reason"))
        .or_else(|| header(m, "x-first-death-reason"))
}

pub async fn list(
    State(state): State<AdminState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let name = q
        .queue
        .unwrap_or_else(|| state.broker().special_queues().dead_letter.clone());
    let queue = queue_name(&name)?;
    let messages = state
        .broker()
        .queues()
        .embedded()?
        .browse(&queue, q.limit.unwrap_or(100).min(10_000))?;
    let entries: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id.as_str(),
                "reason": reason(m),
                "exchange": header(m, EXCHANGE_HEADER),
                "routing_key": header(m, ROUTING_KEY_HEADER),
                "source_queue": header(m, "x-last-death-queue"),
                "message": message_to_json(m),
            })
        })
        .collect();
    let total = state.broker().queues().stats(&queue)?.messages;
    Ok(Json(
        json!({ "queue": name, "total": total, "messages": entries }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedriveRequest {
    queue: Option<String>,
    limit: Option<usize>,
}

pub async fn redrive(
    State(state): State<AdminState>,
    body: Option<Json<RedriveRequest>>,
) -> ApiResult<Json<Value>> {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let name = req
        .queue
        .unwrap_or_else(|| state.broker().special_queues().dead_letter.clone());
    let queue = queue_name(&name)?;
    let broker = state.broker();
    let replayed = broker.replay(&queue, req.limit).await?;
    let left = req.limit.map(|l| l.saturating_sub(replayed));
    let moved = if left == Some(0) {
        0
    } else {
        // On JetStream only replay applies (see the README's store differences).
        match broker.queues().embedded() {
            Ok(queues) => queues.redrive(&queue, left)?,
            Err(_) => 0,
        }
    };
    let remaining = broker.queues().stats(&queue)?.messages;
    Ok(Json(json!({
        "queue": name,
        "redriven": replayed + moved,
        "replayed_through_exchanges": replayed,
        "returned_to_source_queues": moved,
        "remaining": remaining,
    })))
}
