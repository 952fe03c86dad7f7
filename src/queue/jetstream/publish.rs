//! Publishing into the JetStream store: a publish's outputs become stream copies, sent in
//! order by the store's [`outbox`](super::outbox) and confirmed by [`JetStreamPending`].

use std::collections::HashMap;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use super::{outbox, JetStreamError, JetStreamPending, JetStreamQueues};
use crate::queue::envelope::{self, EnvelopeHeader};
use crate::queue::{EnqueueOptions, PublishItem, QueueError, QueueName};

impl JetStreamQueues {
    /// Hands every item to the store's sender, in order (see [`outbox`]). The returned
    /// [`JetStreamPending`] resolves once every stream acknowledged its copy: only then may
    /// the publisher be confirmed.
    pub fn submit(&self, items: Vec<PublishItem>) -> Result<JetStreamPending, JetStreamError> {
        let now = self.clock.now_ms();
        // Copies of one message into one queue are told apart by their ordinal, so that a
        // plugin's two copies are two messages and a retried publish is still idempotent.
        let mut ordinals: HashMap<&QueueName, u32> = HashMap::new();
        let mut copies = Vec::with_capacity(items.len());
        for item in &items {
            let ordinal = ordinals.entry(&item.queue).or_default();
            *ordinal += 1;
            let header = EnvelopeHeader {
                enqueued_ms: now,
                not_before_ms: not_before(now, &item.options),
                expires_ms: None,
                deliveries: 0,
                exchange: item.options.exchange.clone(),
                routing_keys: item.options.routing_keys.clone(),
            };
            let payload =
                envelope::encode(&header, &item.message.encode().map_err(QueueError::from)?)?;
            copies.push(outbox::Copy {
                subject: self.subject(&item.queue)?,
                id: match *ordinal {
                    1 => item.message.id.as_str().to_owned(),
                    n => format!("{}#{n}", item.message.id.as_str()),
                },
                payload: payload.into(),
                queue: item.queue.to_string(),
            });
        }
        let (sent, paced) = self.outbox.submit(copies);
        Ok(JetStreamPending { sent, paced })
    }

    /// [`submit`](Self::submit), for callers that are async anyway.
    pub async fn enqueue(
        &self,
        items: Vec<PublishItem>,
    ) -> Result<JetStreamPending, JetStreamError> {
        self.submit(items)
    }

    /// Publishes one stored record into `queue`'s stream, outside the ordered sender (the
    /// dead-lettering of a consumer).
    pub(super) async fn send(
        &self,
        queue: &QueueName,
        message_id: String,
        payload: Bytes,
    ) -> Result<PublishAckFuture, JetStreamError> {
        let publish = PublishMessage::build()
            .payload(payload)
            .message_id(message_id);
        self.js
            .send_publish(self.subject(queue)?, publish)
            .await
            .map_err(|e| JetStreamError::nats(format!("publishing to queue {queue}"), e))
    }
}

/// When a message published now with `options` may first be delivered.
fn not_before(now: u64, options: &EnqueueOptions) -> Option<u64> {
    let relative = options.delay_ms.map(|d| now.saturating_add(d));
    match (options.not_before_ms, relative) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
