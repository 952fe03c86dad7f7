//! The durable queue engine: queues, consumers, deliveries and their policies, on top of
//! [`crate::store`]. Knows nothing of AMQP framing or WebAssembly, and nothing of sockets
//! except in [`jetstream`], the same queues kept in a NATS JetStream cluster for scale-out.
//!
//! Guarantees (see `ARCHITECTURE.md`, "Queue engine", for the reasoning):
//! - at-least-once: a message is removed only by an ack, a dead-lettering or a queue delete;
//! - a publish batch is one atomic write (one message-log frame); its [`Pending`] resolves only once it is as
//!   durable as the strictest [`Durability`](crate::store::Durability) among its queues;
//! - first deliveries are FIFO per queue; returned messages go before never-delivered ones;
//! - memory is O(queues + in-flight + requeued + delayed + dedup window), not O(backlog).

mod admin;
mod backend;
mod clock;
mod config;
mod consumer;
mod cx;
mod death;
mod engine;
mod envelope;
mod error;
mod hot;
pub mod jetstream;
mod name;
mod publish;
mod queues;
mod recovery;
mod retry;
mod state;

pub use backend::{QueueStore, Remote, StoreConsumer, StorePending};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Overflow, QueueConfig};
pub use consumer::{Consumer, ConsumerOptions, Delivery};
pub use death::DeadLetterReason;
pub use envelope::ENVELOPE_VERSION;
pub use error::QueueError;
pub use name::QueueName;
pub use publish::{EnqueueOptions, Pending, PublishItem, PublishOutcome, PublishReceipt};
pub use queues::{QueueStats, Queues, QueuesOptions, DEFAULT_MAX_QUEUES};
pub use retry::RetryPolicy;
