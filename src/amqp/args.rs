//! AMQP declaration arguments → broker settings, and broker errors → AMQP exceptions.
//!
//! Queue arguments map onto [`QueueConfig`]:
//! - `x-message-ttl` (ms) → `message_ttl_ms`; `x-max-length` → `max_length`;
//! - `x-overflow`: `drop-head` (RabbitMQ's default, also ours when absent) or `reject-publish`
//!   (`reject-publish-dlx` is treated as `reject-publish`);
//! - `x-delivery-limit` N → `max_deliveries = N + 1` (RabbitMQ counts failed deliveries, the
//!   engine counts deliveries);
//! - `x-retry-delays` (array of ms) → [`RetryPolicy::List`] — Switchyard's own;
//! - `x-dead-letter-exchange` (+ `x-dead-letter-routing-key`) → `dead_letter`: the engine
//!   dead-letters into a *queue*, so the exchange is resolved at declare time by a dry run of
//!   routing through it; it must lead to exactly one queue (e.g. a direct or fanout DLX with one
//!   bound queue). Otherwise the declare fails with 406.
//! - `x-dead-letter-exchange`/`-routing-key` are also kept as the labels a dead letter is
//!   delivered with (`dead_letter_exchange`/`_routing_key`), as RabbitMQ reports them;
//! - `x-expires` (ms, positive) → `expires_ms`: the broker deletes the queue once unused that
//!   long; other arguments are kept but ignored, as RabbitMQ does with unknown ones.

use crate::broker::{Broker, BrokerError};
use crate::message::{FieldValue, Headers, Message};
use crate::queue::{Overflow, QueueConfig, QueueError, QueueName, RetryPolicy};
use crate::routing::TopologyError;

use super::error::AmqpError;

fn int_arg(args: &Headers, name: &str) -> Result<Option<u64>, AmqpError> {
    match args.get(name) {
        None | Some(FieldValue::Void) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            _ => Err(AmqpError::precondition_failed(format!(
                "invalid arg '{name}': expected a non-negative integer, got {v:?}"
            ))),
        },
    }
}

fn str_arg<'a>(args: &'a Headers, name: &str) -> Result<Option<&'a str>, AmqpError> {
    match args.get(name) {
        None | Some(FieldValue::Void) => Ok(None),
        Some(FieldValue::String(s)) => Ok(Some(s)),
        Some(v) => Err(AmqpError::precondition_failed(format!(
            "invalid arg '{name}': expected a string, got {v:?}"
        ))),
    }
}

/// A string argument (e.g. `x-plugin`, `x-filter`).
pub fn string_arg(args: &Headers, name: &str) -> Result<Option<String>, AmqpError> {
    Ok(str_arg(args, name)?.map(str::to_owned))
}

/// The queue configuration the arguments of `queue.declare` ask for.
pub async fn queue_config(broker: &Broker, args: &Headers) -> Result<QueueConfig, AmqpError> {
    let expires_ms = int_arg(args, "x-expires")?;
    if expires_ms == Some(0) {
        return Err(AmqpError::precondition_failed(
            "invalid arg 'x-expires': must be positive",
        ));
    }
    let mut config = QueueConfig {
        message_ttl_ms: int_arg(args, "x-message-ttl")?,
        max_length: int_arg(args, "x-max-length")?,
        expires_ms,
        ..QueueConfig::default()
    };
    config.overflow = match str_arg(args, "x-overflow")? {
        None | Some("drop-head") => Overflow::DropHead,
        Some("reject-publish") | Some("reject-publish-dlx") => Overflow::RejectPublish,
        Some(other) => {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-overflow': {other:?}"
            )))
        }
    };
    if let Some(limit) = int_arg(args, "x-delivery-limit")? {
        config.max_deliveries = Some(u32::try_from(limit.saturating_add(1)).unwrap_or(u32::MAX));
    }
    match args.get("x-retry-delays") {
        None | Some(FieldValue::Void) => {}
        Some(FieldValue::Array(items)) => {
            let delays = items
                .iter()
                .map(|v| v.as_i64().filter(|n| *n >= 0).map(|n| n as u64))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AmqpError::precondition_failed(
                        "invalid arg 'x-retry-delays': expected an array of non-negative integers",
                    )
                })?;
            config.retry = RetryPolicy::List { delays_ms: delays };
        }
        Some(v) => {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-retry-delays': expected an array, got {v:?}"
            )))
        }
    }
    if let Some(dlx) = str_arg(args, "x-dead-letter-exchange")? {
        let dlrk = str_arg(args, "x-dead-letter-routing-key")?;
        config.dead_letter = Some(resolve_dead_letter(broker, dlx, dlrk.unwrap_or("")).await?);
        // What RabbitMQ reports for a dead letter: the DLX, and the dead-letter routing key
        // when one is set (else the message's own keys).
        config.dead_letter_exchange = Some(dlx.to_owned());
        config.dead_letter_routing_key = dlrk.map(str::to_owned);
    }
    Ok(config)
}

/// The one queue that routing `key` through exchange `dlx` reaches.
async fn resolve_dead_letter(
    broker: &Broker,
    dlx: &str,
    key: &str,
) -> Result<QueueName, AmqpError> {
    let decision = broker
        .dry_run(dlx, key, Message::new(Vec::new()))
        .await
        .map_err(|e| {
            AmqpError::precondition_failed(format!(
                "x-dead-letter-exchange {dlx:?} cannot be resolved: {e}"
            ))
        })?;
    let mut queues: Vec<&str> = decision
        .outputs
        .iter()
        .filter(|o| o.reason.is_none())
        .map(|o| o.queue.as_str())
        .collect();
    queues.dedup();
    match queues.as_slice() {
        [one] => QueueName::new(*one).map_err(|e| AmqpError::precondition_failed(e.to_string())),
        _ => Err(AmqpError::precondition_failed(format!(
            "x-dead-letter-exchange {dlx:?} with routing key {key:?} must lead to exactly one \
             queue (it leads to {}); declare and bind the dead-letter queue first",
            queues.len()
        ))),
    }
}

/// The AMQP exception for a broker error.
pub fn broker_error(e: BrokerError) -> AmqpError {
    match e {
        BrokerError::ExchangeNotFound(name) => {
            AmqpError::not_found(format!("no exchange '{name}' in vhost '/'"))
        }
        BrokerError::InternalExchange(name) => {
            AmqpError::access_refused(format!("cannot publish to internal exchange '{name}'"))
        }
        BrokerError::Rejected(why) => AmqpError::precondition_failed(why),
        BrokerError::Topology(t) => topology_error(t),
        BrokerError::Queue(q) => queue_error(q),
        BrokerError::Plugin(p) => AmqpError::precondition_failed(p.to_string()),
        e @ (BrokerError::TopologyFile { .. }
        | BrokerError::Internal(_)
        | BrokerError::Cluster(_)) => AmqpError::internal(e.to_string()),
    }
}

pub fn topology_error(e: TopologyError) -> AmqpError {
    let text = e.to_string();
    match e {
        TopologyError::NoSuchExchange(_) => AmqpError::not_found(text),
        TopologyError::Inequivalent { .. }
        | TopologyError::InUse(_)
        | TopologyError::InvalidArguments(_) => AmqpError::precondition_failed(text),
        TopologyError::Predefined(_) => AmqpError::access_refused(text),
    }
}

pub fn queue_error(e: QueueError) -> AmqpError {
    let text = e.to_string();
    match e {
        QueueError::NotFound(name) => {
            AmqpError::not_found(format!("no queue '{name}' in vhost '/'"))
        }
        QueueError::Deleted => AmqpError::not_found(text),
        QueueError::InvalidName { .. }
        | QueueError::ConfigMismatch(_)
        | QueueError::InvalidConfig(_)
        | QueueError::TooManyQueues { .. }
        | QueueError::UnknownDeliveryTag(_) => AmqpError::precondition_failed(text),
        QueueError::EmbeddedOnly(_) => AmqpError::not_implemented(text),
        _ => AmqpError::internal(text),
    }
}
