//! Per-queue configuration, persisted with the queue's declaration.

use serde::{Deserialize, Serialize};

use super::{QueueName, RetryPolicy};
use crate::store::Durability;

/// What a full queue (see [`QueueConfig::max_length`]) does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Overflow {
    /// Refuse the new message (the publish receipt says so; the AMQP layer nacks it).
    #[default]
    RejectPublish,
    /// Accept it and dead-letter the oldest ready message (reason `maxlen`).
    DropHead,
}

/// A queue's policies. Every field defaults to "off".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Overrides the store's default durability for publishes into this queue.
    pub durability: Option<Durability>,
    /// Dead-letter (reason `delivery_limit`) instead of delivering more often than this.
    pub max_deliveries: Option<u32>,
    /// Delay before a nacked-with-requeue message is ready again.
    pub retry: RetryPolicy,
    /// Where dead-lettered messages go; `None` discards them.
    pub dead_letter: Option<QueueName>,
    /// Queue-wide TTL; a message's own `expiration_ms` applies when shorter.
    pub message_ttl_ms: Option<u64>,
    /// Most ready (not in-flight) messages the queue holds.
    pub max_length: Option<u64>,
    pub overflow: Overflow,
    /// Drop a publish whose message id this queue accepted within the window.
    pub dedup_window_ms: Option<u64>,
    /// The exchange a message dead-lettered from this queue is recorded as published to
    /// (what deliveries and later `x-death` entries report); `None` keeps its original one.
    /// Why a label: the engine dead-letters into a queue, but AMQP clients expect to see the
    /// dead-letter exchange through which RabbitMQ would have routed it.
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// The routing key recorded with such a message; `None` keeps its original keys.
    #[serde(default)]
    pub dead_letter_routing_key: Option<String>,
    /// Delete the queue once it has gone this long unused: no push consumer, no `get`, no
    /// redeclaration. The clock starts afresh when the engine opens (not persisted).
    #[serde(default)]
    pub expires_ms: Option<u64>,
}

impl QueueConfig {
    pub(crate) fn validate(&self, own: &QueueName) -> Result<(), String> {
        self.retry.validate()?;
        if self.dead_letter.as_ref() == Some(own) {
            return Err(format!("queue {own} cannot dead-letter into itself"));
        }
        if self.expires_ms == Some(0) {
            return Err("expires_ms must be at least 1".into());
        }
        if self.max_deliveries == Some(0) {
            return Err("max_deliveries must be at least 1".into());
        }
        Ok(())
    }
}
