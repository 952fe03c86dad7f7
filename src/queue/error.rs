//! Errors of the queue engine.

use crate::message::CodecError;
use crate::store::StoreError;

/// Why a queue operation failed. Nothing was acknowledged or changed when one is returned,
/// except where a variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("queue {0:?} does not exist")]
    NotFound(String),
    #[error("queue {0:?} already exists with a different configuration")]
    ConfigMismatch(String),
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    #[error("unknown delivery tag {0} for this consumer (already settled, or never delivered)")]
    UnknownDeliveryTag(u64),
    #[error("stored record could not be read: {0}")]
    Codec(#[from] CodecError),
    #[error("stored record is damaged: {0}")]
    CorruptRecord(String),
    #[error("cannot declare queue {name:?}: the queue limit ({limit}) is reached")]
    TooManyQueues { name: String, limit: usize },
    #[error("the queue was deleted")]
    Deleted,
    /// The JetStream store failed (NATS unreachable, a refusal) or cannot do this.
    #[error(transparent)]
    JetStream(Box<super::jetstream::JetStreamError>),
    #[error("{0} is not available on the JetStream store (it is on the embedded one)")]
    EmbeddedOnly(&'static str),
}

impl From<super::jetstream::JetStreamError> for QueueError {
    /// A queue-level error keeps its own variant (a missing queue stays
    /// [`QueueError::NotFound`]); only NATS failures are wrapped.
    fn from(e: super::jetstream::JetStreamError) -> Self {
        match e {
            super::jetstream::JetStreamError::Queue(q) => q,
            other => QueueError::JetStream(Box::new(other)),
        }
    }
}

impl From<sled::Error> for QueueError {
    fn from(e: sled::Error) -> Self {
        QueueError::Store(e.into())
    }
}
