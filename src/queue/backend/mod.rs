//! [`QueueStore`]: where the queues live — the embedded engine ([`Queues`], one node) or a
//! NATS JetStream namespace ([`JetStreamQueues`], any number of nodes). The broker and the
//! front ends talk to this type only, so one `serve` binary runs either way.
//!
//! Calls on declarations and statistics are synchronous on both (a round trip on JetStream,
//! see [`remote`]); publishing ([`QueueStore::enqueue`] then [`StorePending::durable`]) and
//! consuming are async on both. What only the embedded engine can do (browse, redrive in
//! place, message age, pull consumers of the admin API) is [`QueueStore::embedded`], and is
//! [`QueueError::EmbeddedOnly`] on JetStream.

mod consumer;
mod remote;

pub use consumer::StoreConsumer;
pub use remote::Remote;

use super::jetstream::{JetStreamPending, JetStreamQueues};
use super::{
    ConsumerOptions, Pending, PublishItem, PublishReceipt, QueueConfig, QueueError, QueueName,
    QueueStats, Queues,
};

/// The queues of this node: embedded, or shared with other nodes on JetStream.
#[derive(Debug, Clone)]
pub enum QueueStore {
    Embedded(Queues),
    JetStream(Remote),
}

/// A publish submitted to the store, not yet durable.
#[derive(Debug)]
#[must_use = "a publish is durable only after `durable()` returns Ok"]
pub enum StorePending {
    Embedded(Pending),
    JetStream(JetStreamPending),
}

impl StorePending {
    /// Whether the publisher should wait for this publish before the next: the embedded
    /// store is behind its relaxed writes, or the JetStream sender behind its backlog.
    pub fn paced(&self) -> bool {
        match self {
            StorePending::Embedded(p) => p.paced(),
            StorePending::JetStream(p) => p.paced(),
        }
    }

    /// Waits until every output is durable (on JetStream: acknowledged by every stream).
    pub async fn durable(self) -> Result<PublishReceipt, QueueError> {
        match self {
            StorePending::Embedded(p) => p.durable().await,
            StorePending::JetStream(p) => Ok(p.durable().await?),
        }
    }
}

impl From<Queues> for QueueStore {
    fn from(queues: Queues) -> Self {
        QueueStore::Embedded(queues)
    }
}

impl QueueStore {
    /// The embedded engine, for what only it offers.
    pub fn embedded(&self) -> Result<&Queues, QueueError> {
        match self {
            QueueStore::Embedded(q) => Ok(q),
            QueueStore::JetStream(_) => Err(QueueError::EmbeddedOnly("this operation")),
        }
    }

    /// The JetStream store, when that is where the queues live.
    pub fn jetstream(&self) -> Option<&JetStreamQueues> {
        match self {
            QueueStore::Embedded(_) => None,
            QueueStore::JetStream(r) => Some(r.queues()),
        }
    }

    /// `"embedded"` or `"jetstream"`, for the overview and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueStore::Embedded(_) => "embedded",
            QueueStore::JetStream(_) => "jetstream",
        }
    }

    pub fn declare(&self, name: &QueueName, config: QueueConfig) -> Result<(), QueueError> {
        match self {
            QueueStore::Embedded(q) => q.declare(name, config),
            QueueStore::JetStream(r) => {
                let (js, name) = (r.queues.clone(), name.clone());
                Ok(r.block(async move { js.declare(&name, config).await })?)
            }
        }
    }

    /// Deletes a queue; returns how many messages it held.
    pub fn delete(&self, name: &QueueName) -> Result<u64, QueueError> {
        match self {
            QueueStore::Embedded(q) => q.delete(name),
            QueueStore::JetStream(r) => {
                let (js, name) = (r.queues.clone(), name.clone());
                Ok(r.block(async move { js.delete(&name).await })?)
            }
        }
    }

    /// Deletes the queues whose `expires_ms` passed unused (never any on JetStream, which
    /// refuses `expires_ms`).
    pub fn delete_expired(&self) -> Result<Vec<QueueName>, QueueError> {
        match self {
            QueueStore::Embedded(q) => q.delete_expired(),
            QueueStore::JetStream(_) => Ok(Vec::new()),
        }
    }

    pub fn config(&self, name: &QueueName) -> Result<QueueConfig, QueueError> {
        match self {
            QueueStore::Embedded(q) => q.config(name),
            QueueStore::JetStream(r) => {
                let (js, name) = (r.queues.clone(), name.clone());
                Ok(r.block(async move { js.config(&name).await })?)
            }
        }
    }

    /// Whether `name` is declared; no round trip on either store (routing asks this).
    pub fn exists(&self, name: &str) -> bool {
        match self {
            QueueStore::Embedded(q) => q.exists(name),
            QueueStore::JetStream(r) => r.queues.is_declared(name),
        }
    }

    /// Every queue, in name order.
    pub fn list(&self) -> Vec<QueueName> {
        match self {
            QueueStore::Embedded(q) => q.list(),
            QueueStore::JetStream(r) => r.queues.declared(),
        }
    }

    /// A queue's statistics. On JetStream, `messages` and `unacked` are the cluster's,
    /// `consumers` this node's, and the totals are not kept (0).
    pub fn stats(&self, name: &QueueName) -> Result<QueueStats, QueueError> {
        match self {
            QueueStore::Embedded(q) => q.stats(name),
            QueueStore::JetStream(r) => {
                let (js, queue) = (r.queues.clone(), name.clone());
                let s = r.block(async move { js.stats(&queue).await })?;
                Ok(QueueStats {
                    messages: s.messages,
                    unacked: s.unacked,
                    delayed: 0,
                    consumers: r.consumers(name),
                    published_total: 0,
                    delivered_total: 0,
                    dead_lettered_total: 0,
                })
            }
        }
    }

    /// `Err` while the store cannot take writes: the embedded store after a failed write, the
    /// JetStream store while its connection is down.
    pub fn health(&self) -> Result<(), QueueError> {
        match self {
            QueueStore::Embedded(q) => q.health(),
            QueueStore::JetStream(r) => r.queues.health().map_err(QueueError::from),
        }
    }

    /// Bytes on this node's disk (0 on JetStream: the servers hold the data).
    pub fn size_on_disk(&self) -> Result<u64, QueueError> {
        match self {
            QueueStore::Embedded(q) => q.size_on_disk(),
            QueueStore::JetStream(_) => Ok(0),
        }
    }

    /// Makes everything written durable now (nothing to do on JetStream: a publish is
    /// confirmed only once stored).
    pub fn flush(&self) -> Result<(), QueueError> {
        match self {
            QueueStore::Embedded(q) => q.flush(),
            QueueStore::JetStream(_) => Ok(()),
        }
    }

    /// Submits a publish's outputs, in call order; await [`StorePending::durable`] before
    /// confirming the publisher.
    pub fn enqueue(&self, items: Vec<PublishItem>) -> Result<StorePending, QueueError> {
        match self {
            QueueStore::Embedded(q) => Ok(StorePending::Embedded(q.enqueue(items)?)),
            QueueStore::JetStream(r) => Ok(StorePending::JetStream(r.queues.submit(items)?)),
        }
    }

    /// Starts consuming `name`. On JetStream it competes with the queue's consumers on every
    /// node.
    pub async fn consume(
        &self,
        name: &QueueName,
        options: ConsumerOptions,
    ) -> Result<StoreConsumer, QueueError> {
        match self {
            QueueStore::Embedded(q) => Ok(StoreConsumer::embedded(q.consume(name, options)?)),
            QueueStore::JetStream(r) => {
                let consumer = r.queues.consume(name, options).await?;
                r.consumer_opened(name);
                let guard = remote::LocalConsumer {
                    counts: r.local_consumers.clone(),
                    queue: name.clone(),
                };
                Ok(StoreConsumer::jetstream(consumer, guard))
            }
        }
    }
}
