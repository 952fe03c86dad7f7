//! Publish types: what goes in, what comes back.

use super::{QueueError, QueueName};
use crate::message::Message;
use crate::store::Ticket;

/// Per-publish options.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Scheduled delivery: not before this wall-clock time (ms since the epoch).
    pub not_before_ms: Option<u64>,
    /// Scheduled delivery relative to now; the later of the two wins when both are given.
    pub delay_ms: Option<u64>,
    /// Exchange and routing keys the message was published with, recorded in `x-death`.
    pub exchange: String,
    pub routing_keys: Vec<String>,
}

/// One message for one queue in a [`publish_batch`](super::Queues::publish_batch).
#[derive(Debug, Clone)]
pub struct PublishItem {
    pub queue: QueueName,
    pub message: Message,
    pub options: EnqueueOptions,
}

impl PublishItem {
    pub fn new(queue: QueueName, message: Message) -> PublishItem {
        PublishItem {
            queue,
            message,
            options: EnqueueOptions::default(),
        }
    }
}

/// What happened to one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored at this position of its queue.
    Enqueued { seq: u64 },
    /// Not stored: the queue accepted the same message id within its dedup window. (The
    /// earlier copy is stored, so the publisher may treat this as success.)
    Duplicate,
    /// Not stored: the queue is full and its overflow policy is `reject-publish`.
    RejectedMaxLength,
}

impl PublishOutcome {
    pub fn is_stored(self) -> bool {
        matches!(self, PublishOutcome::Enqueued { .. })
    }
}

/// Outcomes in the order of the batch's items. Returned only once every stored item is as
/// durable as its queues' durability mode promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReceipt {
    pub outcomes: Vec<PublishOutcome>,
}

/// A batch that is applied (visible to consumers, atomic) but maybe not yet durable.
///
/// Why split: a publisher with many messages in flight (AMQP publisher confirms) can apply
/// many batches and then await them, so many batches share one flush.
#[derive(Debug)]
#[must_use = "a publish is acknowledged only after `durable()` returns Ok"]
pub struct Pending {
    pub(crate) receipt: PublishReceipt,
    pub(crate) ticket: Option<Ticket>,
    /// A relaxed batch whose ticket is only there because the store is behind
    /// ([`crate::store::Store::pace`]).
    pub(crate) paced: bool,
}

impl Pending {
    /// The store has more unflushed bytes than it allows: a publisher that would not
    /// otherwise wait for durability (AMQP without confirms) must await
    /// [`durable`](Pending::durable) before its next publish, or memory grows with the backlog.
    pub fn paced(&self) -> bool {
        self.paced
    }

    /// Wait until the batch is durable, then return its receipt.
    pub async fn durable(self) -> Result<PublishReceipt, QueueError> {
        if let Some(t) = self.ticket {
            t.wait().await?;
        }
        Ok(self.receipt)
    }
}
