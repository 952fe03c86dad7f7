//! Consumers and deliveries.
//!
//! Delivery tags are per consumer: 1, 2, 3, … in delivery order, never reused. `multiple`
//! settles every unsettled tag of *this consumer* up to the given one. (An AMQP channel with
//! several consumers maps its channel-wide tags onto (consumer, tag) pairs.)

use std::sync::Arc;

use tokio::sync::mpsc;

use super::engine::Inner;
use super::state::ConsumerId;
use super::{QueueError, QueueName};
use crate::message::Message;

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub queue: QueueName,
    /// The consumer's tag for this delivery, for ack/nack/reject.
    pub tag: u64,
    /// Position in the queue (stable across redeliveries).
    pub seq: u64,
    /// This message may have been delivered before (to any consumer, before a restart too).
    pub redelivered: bool,
    /// Which delivery this is: 1 for the first.
    pub delivery_count: u32,
    /// The exchange and routing keys the message was published with (for a dead letter: the
    /// labels of its source queue's `dead_letter_exchange`/`_routing_key`, when set).
    pub exchange: String,
    pub routing_keys: Vec<String>,
    pub message: Message,
}

/// How a consumer takes messages.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerOptions {
    /// Most unsettled deliveries pushed to this consumer; 0 = unlimited (AMQP's meaning, which
    /// lets a large backlog into memory: prefer a limit).
    pub prefetch: u32,
    /// `false`: never pushed to; messages are taken with [`Consumer::get`] only (basic.get).
    pub push: bool,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            prefetch: 100,
            push: true,
        }
    }
}

/// A consumer of one queue. Dropping it returns its unsettled messages to the queue (marked
/// redelivered, at their original position).
#[derive(Debug)]
pub struct Consumer {
    pub(crate) inner: Arc<Inner>,
    pub(crate) id: ConsumerId,
    pub(crate) queue: QueueName,
    pub(crate) rx: mpsc::UnboundedReceiver<Delivery>,
}

impl Consumer {
    pub fn queue(&self) -> &QueueName {
        &self.queue
    }

    /// Next pushed delivery; `None` once the queue is deleted.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A pushed delivery if one is waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    /// Pull one ready message (AMQP basic.get), regardless of prefetch.
    pub fn get(&self) -> Result<Option<Delivery>, QueueError> {
        self.inner.get(self.id)
    }

    /// Settle as processed. Returns how many deliveries were settled.
    pub fn ack(&self, tag: u64, multiple: bool) -> Result<usize, QueueError> {
        self.inner.settle(self.id, tag, multiple, Settle::Ack)
    }

    /// Settle as failed: `requeue` puts it back (after the retry delay, or dead-lettered at the
    /// delivery limit); otherwise it is dead-lettered with reason `rejected`.
    pub fn nack(&self, tag: u64, multiple: bool, requeue: bool) -> Result<usize, QueueError> {
        let how = if requeue {
            Settle::Requeue
        } else {
            Settle::Reject
        };
        self.inner.settle(self.id, tag, multiple, how)
    }

    /// `nack` of a single tag.
    pub fn reject(&self, tag: u64, requeue: bool) -> Result<usize, QueueError> {
        self.nack(tag, false, requeue)
    }

    /// Deliveries this consumer holds unsettled.
    pub fn unacked(&self) -> usize {
        self.inner.unacked(self.id)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.inner.cancel(self.id);
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    Requeue,
    Reject,
}
