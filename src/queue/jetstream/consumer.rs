//! A consumer of one queue on the JetStream store.
//!
//! All consumers of a queue, on every node, pull through the queue's one durable consumer, so
//! JetStream hands each message to one of them. The queue's policies that JetStream has no
//! word for (TTL, delivery limit, dead-lettering with `x-death`, retry schedules) are applied
//! here, by the node that received the message.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;

use super::{JetStreamError, JetStreamQueues};
use crate::queue::death::{self, Death};
use crate::queue::envelope::{self, EnvelopeHeader};
use crate::queue::{
    ConsumerOptions, DeadLetterReason, Delivery, QueueConfig, QueueError, QueueName,
};

/// A delivery this consumer holds until it is settled.
#[derive(Debug)]
struct Held {
    message: jetstream::Message,
    header: EnvelopeHeader,
    deliveries: u32,
    seq: u64,
}

/// A consumer of one queue. Delivery tags are 1, 2, 3… per consumer, as in
/// [`Consumer`](crate::queue::Consumer). Dropping it returns its unsettled messages at once.
pub struct JetStreamConsumer {
    queues: JetStreamQueues,
    queue: QueueName,
    config: QueueConfig,
    stream: String,
    /// The pull subscription; `None` only once [`hand_back`](Self::hand_back) ran (closing or
    /// dropping the consumer).
    messages: Option<pull::Stream>,
    unsettled: BTreeMap<u64, Held>,
    next_tag: u64,
    /// A message pulled and not yet admitted: kept until [`admit`](Self::admit) finishes, so
    /// that a `recv` dropped halfway (a `select!` that took another branch) admits it again
    /// next time instead of leaving it to `ack_wait`. Admitting twice is harmless: a hold is a
    /// NAK, and a dead-letter copy carries a message id that JetStream deduplicates.
    arrived: Option<jetstream::Message>,
}

impl std::fmt::Debug for JetStreamConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamConsumer")
            .field("queue", &self.queue)
            .field("unsettled", &self.unsettled.len())
            .finish_non_exhaustive()
    }
}

impl JetStreamConsumer {
    pub(super) async fn open(
        queues: JetStreamQueues,
        queue: QueueName,
        config: QueueConfig,
        options: ConsumerOptions,
    ) -> Result<JetStreamConsumer, JetStreamError> {
        let stream = queues.stream(&queue)?;
        let failed = |e: &dyn std::fmt::Display| {
            JetStreamError::nats(format!("opening a consumer of queue {queue}"), e)
        };
        let consumer: PullConsumer = queues
            .js
            .get_consumer_from_stream(queues.names.consumer(), &stream)
            .await
            .map_err(|e| failed(&e))?;
        let batch = match options.prefetch {
            0 => 1_000,
            n => n as usize,
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| failed(&e))?;
        Ok(JetStreamConsumer {
            queues,
            queue,
            config,
            stream,
            messages: Some(messages),
            unsettled: BTreeMap::new(),
            next_tag: 1,
            arrived: None,
        })
    }

    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// Deliveries this consumer holds unsettled.
    pub fn unacked(&self) -> usize {
        self.unsettled.len()
    }

    /// The next delivery; `None` once the queue is deleted. Messages whose time has not come,
    /// whose TTL passed or that reached the delivery limit are dealt with on the way.
    /// Cancel-safe: no message is lost to a dropped call.
    pub async fn recv(&mut self) -> Result<Option<Delivery>, JetStreamError> {
        loop {
            if let Some(message) = self.arrived.clone() {
                let admitted = self.admit(message).await?;
                self.arrived = None;
                match admitted {
                    Some(delivery) => return Ok(Some(delivery)),
                    None => continue,
                }
            }
            let Some(messages) = self.messages.as_mut() else {
                return Ok(None);
            };
            let message = match messages.next().await {
                None => return Ok(None),
                Some(Ok(m)) => m,
                Some(Err(e)) if e.kind() == MessagesErrorKind::ConsumerDeleted => return Ok(None),
                Some(Err(e)) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                    tracing::warn!(queue = %self.queue, "NATS heartbeat missed; pulling on");
                    continue;
                }
                Some(Err(e)) => {
                    return Err(JetStreamError::nats(
                        format!("pulling from queue {}", self.queue),
                        e,
                    ))
                }
            };
            self.arrived = Some(message);
        }
    }

    /// A received message becomes a delivery, or is held back, expired or dead-lettered.
    async fn admit(
        &mut self,
        message: jetstream::Message,
    ) -> Result<Option<Delivery>, JetStreamError> {
        let (seq, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered.max(1) as u32),
            Err(e) => return Err(JetStreamError::nats("reading a delivery's metadata", e)),
        };
        let (header, body) = match envelope::decode(&message.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                // Not written by Switchyard (or damaged): keeping it would redeliver it forever.
                tracing::error!(queue = %self.queue, seq, error = %e, "unreadable message removed");
                self.settle(&message, AckKind::Term).await?;
                return Ok(None);
            }
        };
        let now = self.queues.clock.now_ms();
        if let Some(due) = header.not_before_ms.filter(|&t| t > now) {
            self.settle(
                &message,
                AckKind::Nak(Some(Duration::from_millis(due - now))),
            )
            .await?;
            return Ok(None);
        }
        // The hold of a delayed publish was a JetStream delivery, not one of ours.
        let deliveries = match header.not_before_ms {
            Some(_) if delivered > 1 => delivered - 1,
            _ => delivered,
        };
        let ttl = match (self.config.message_ttl_ms, body.properties.expiration_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let held = Held {
            message,
            header,
            deliveries,
            seq,
        };
        if ttl.is_some_and(|ttl| held.header.enqueued_ms.saturating_add(ttl) <= now) {
            self.dead_letter(held, DeadLetterReason::Expired).await?;
            return Ok(None);
        }
        if self
            .config
            .max_deliveries
            .is_some_and(|max| deliveries > max)
        {
            self.dead_letter(held, DeadLetterReason::DeliveryLimit)
                .await?;
            return Ok(None);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        let delivery = Delivery {
            queue: self.queue.clone(),
            tag,
            seq,
            redelivered: deliveries > 1,
            delivery_count: deliveries,
            exchange: held.header.exchange.clone(),
            routing_keys: held.header.routing_keys.clone(),
            message: body,
        };
        self.unsettled.insert(tag, held);
        Ok(Some(delivery))
    }

    /// Settle as processed. Returns how many deliveries were settled.
    pub async fn ack(&mut self, tag: u64, multiple: bool) -> Result<usize, JetStreamError> {
        let taken = self.take(tag, multiple)?;
        for held in &taken {
            self.settle(&held.message, AckKind::Ack).await?;
        }
        Ok(taken.len())
    }

    /// Settle as failed: `requeue` returns it after the queue's retry delay (or dead-letters it
    /// at the delivery limit); otherwise it is dead-lettered with reason `rejected`.
    pub async fn nack(
        &mut self,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<usize, JetStreamError> {
        let taken = self.take(tag, multiple)?;
        let n = taken.len();
        for held in taken {
            let limit = self.config.max_deliveries;
            match requeue {
                true if limit.is_some_and(|max| held.deliveries >= max) => {
                    self.dead_letter(held, DeadLetterReason::DeliveryLimit)
                        .await?
                }
                true => {
                    let delay = self.config.retry.delay_ms(held.deliveries, rand::random());
                    let delay = (delay > 0).then(|| Duration::from_millis(delay));
                    self.settle(&held.message, AckKind::Nak(delay)).await?;
                }
                false => self.dead_letter(held, DeadLetterReason::Rejected).await?,
            }
        }
        Ok(n)
    }

    /// The unsettled deliveries `tag` (and, with `multiple`, every one before it) names.
    fn take(&mut self, tag: u64, multiple: bool) -> Result<Vec<Held>, JetStreamError> {
        let tags: Vec<u64> = match multiple {
            true => self.unsettled.range(..=tag).map(|(t, _)| *t).collect(),
            false => self
                .unsettled
                .contains_key(&tag)
                .then_some(tag)
                .into_iter()
                .collect(),
        };
        if tags.is_empty() {
            return Err(QueueError::UnknownDeliveryTag(tag).into());
        }
        Ok(tags
            .iter()
            .filter_map(|t| self.unsettled.remove(t))
            .collect())
    }

    /// Copies the message, with its `x-death` record, into the dead-letter queue (if the queue
    /// has one), then removes it here. The copy's message id names this stream and sequence,
    /// so doing this twice (a node died in between) stores one copy.
    async fn dead_letter(
        &self,
        held: Held,
        reason: DeadLetterReason,
    ) -> Result<(), JetStreamError> {
        tracing::debug!(queue = %self.queue, seq = held.seq, reason = reason.code(), "dead-lettering");
        if let Some(target) = &self.config.dead_letter {
            let (h, mut message) = envelope::decode(&held.message.payload)?;
            let now = self.queues.clock.now_ms();
            death::record(
                &mut message,
                &Death {
                    reason,
                    queue: self.queue.as_str(),
                    exchange: &h.exchange,
                    routing_keys: &h.routing_keys,
                    time_ms: now,
                    deliveries: held.deliveries,
                },
            );
            let header = EnvelopeHeader {
                enqueued_ms: now,
                exchange: self
                    .config
                    .dead_letter_exchange
                    .clone()
                    .unwrap_or(h.exchange),
                routing_keys: match &self.config.dead_letter_routing_key {
                    Some(key) => vec![key.clone()],
                    None => h.routing_keys,
                },
                ..EnvelopeHeader::default()
            };
            let payload = envelope::encode(&header, &message.encode().map_err(QueueError::from)?)?;
            let id = format!("dl:{}:{}", self.stream, held.seq);
            let ack = self.queues.send(target, id, payload.into()).await?;
            ack.await.map_err(|e| {
                JetStreamError::nats(format!("dead-lettering into queue {target}"), e)
            })?;
        }
        self.settle(&held.message, AckKind::Ack).await
    }

    /// Stops pulling, then returns every unsettled delivery to the queue (as an AMQP channel
    /// that closes). Dropping the consumer does the same without waiting for it.
    pub async fn close(mut self) -> Result<(), JetStreamError> {
        for message in self.hand_back() {
            self.settle(&message, AckKind::Nak(None)).await?;
        }
        Ok(())
    }

    /// Unsubscribes, then gives out the messages to return: the unsettled ones and one pulled
    /// but not yet admitted.
    ///
    /// The order is the point. JetStream hands a NAKed message to the next pull request
    /// waiting, and this consumer's last one may still be waiting: a NAK sent first could come
    /// straight back to an inbox nobody reads and sit out `ack_wait`. The unsubscribe goes out
    /// first on the same connection, so when JetStream sees the NAKs that request has no
    /// interest and is skipped.
    fn hand_back(&mut self) -> Vec<jetstream::Message> {
        drop(self.messages.take());
        let held = std::mem::take(&mut self.unsettled).into_values();
        held.map(|h| h.message).chain(self.arrived.take()).collect()
    }

    async fn settle(
        &self,
        message: &jetstream::Message,
        kind: AckKind,
    ) -> Result<(), JetStreamError> {
        message.ack_with(kind).await.map_err(|e| {
            JetStreamError::nats(format!("settling a delivery of queue {}", self.queue), e)
        })
    }
}

impl Drop for JetStreamConsumer {
    /// Unsettled messages go back at once (as when an AMQP channel closes), not after
    /// `ack_wait`. Without a runtime (a consumer dropped at shutdown), JetStream's `ack_wait`
    /// returns them.
    fn drop(&mut self) {
        let held = self.hand_back();
        if held.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for message in held {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                }
            });
        }
    }
}
