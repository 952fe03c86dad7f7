//! [`StoreConsumer`]: a consumer of either store, with the calls both can answer.

use std::time::Duration;

use super::remote::LocalConsumer;
use crate::queue::jetstream::JetStreamConsumer;
use crate::queue::{Consumer, Delivery, QueueError, QueueName};

/// How long [`StoreConsumer::next_ready`] waits on JetStream before it calls a queue empty:
/// there, "nothing ready" is only known by waiting for a delivery that does not come.
const EMPTY_AFTER: Duration = Duration::from_millis(500);

/// A consumer of one queue, on the embedded store or on JetStream.
#[derive(Debug)]
pub struct StoreConsumer(Inner);

#[derive(Debug)]
enum Inner {
    Embedded(Consumer),
    /// The guard counts the consumer as this node's while it lives.
    JetStream(Box<JetStreamConsumer>, #[allow(dead_code)] LocalConsumer),
}

impl StoreConsumer {
    pub(super) fn embedded(consumer: Consumer) -> StoreConsumer {
        StoreConsumer(Inner::Embedded(consumer))
    }

    pub(super) fn jetstream(consumer: JetStreamConsumer, guard: LocalConsumer) -> StoreConsumer {
        StoreConsumer(Inner::JetStream(Box::new(consumer), guard))
    }

    pub fn queue(&self) -> &QueueName {
        match &self.0 {
            Inner::Embedded(c) => c.queue(),
            Inner::JetStream(c, _) => c.queue(),
        }
    }

    /// The next delivery; `None` once the queue is deleted. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Delivery>, QueueError> {
        match &mut self.0 {
            Inner::Embedded(c) => Ok(c.recv().await),
            Inner::JetStream(c, _) => Ok(c.recv().await?),
        }
    }

    /// A delivery already pushed to this consumer, without waiting: the embedded store's
    /// deliveries are queued in memory, so a consumer task can send a run of them at once.
    /// Always `None` on JetStream (take its deliveries with [`recv`](Self::recv)).
    pub fn try_recv(&mut self) -> Option<Delivery> {
        match &mut self.0 {
            Inner::Embedded(c) => c.try_recv(),
            Inner::JetStream(..) => None,
        }
    }

    /// A ready message if there is one (a pull: management and replay). On JetStream this
    /// waits up to half a second for one.
    pub async fn next_ready(&mut self) -> Result<Option<Delivery>, QueueError> {
        match &mut self.0 {
            Inner::Embedded(c) => c.get(),
            Inner::JetStream(c, _) => match tokio::time::timeout(EMPTY_AFTER, c.recv()).await {
                Ok(received) => Ok(received?),
                Err(_) => Ok(None),
            },
        }
    }

    /// Settle as processed. Returns how many deliveries were settled.
    pub async fn ack(&mut self, tag: u64, multiple: bool) -> Result<usize, QueueError> {
        match &mut self.0 {
            Inner::Embedded(c) => c.ack(tag, multiple),
            Inner::JetStream(c, _) => Ok(c.ack(tag, multiple).await?),
        }
    }

    /// Settle as failed: `requeue` returns it after the retry delay (or dead-letters it at the
    /// delivery limit); otherwise it is dead-lettered with reason `rejected`.
    pub async fn nack(
        &mut self,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<usize, QueueError> {
        match &mut self.0 {
            Inner::Embedded(c) => c.nack(tag, multiple, requeue),
            Inner::JetStream(c, _) => Ok(c.nack(tag, multiple, requeue).await?),
        }
    }

    /// Deliveries this consumer holds unsettled.
    pub fn unacked(&self) -> usize {
        match &self.0 {
            Inner::Embedded(c) => c.unacked(),
            Inner::JetStream(c, _) => c.unacked(),
        }
    }
}
