//! Errors of the JetStream queue store.

use crate::queue::QueueError;

/// Why an operation on the JetStream store failed. As with [`QueueError`], nothing was
/// acknowledged when one is returned: a publish that fails may be retried whole (its message
/// ids make the retry idempotent within the dedup window).
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    #[error("cannot reach NATS at {url}: {cause} (is nats-server running, with JetStream on: `nats-server -js`?)")]
    Connect { url: String, cause: String },
    #[error("NATS JetStream refused {what}: {cause}")]
    Nats { what: String, cause: String },
    #[error("the JetStream store cannot hold this: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl JetStreamError {
    /// A NATS failure while doing `what`.
    pub(crate) fn nats(what: impl Into<String>, cause: impl std::fmt::Display) -> JetStreamError {
        JetStreamError::Nats {
            what: what.into(),
            cause: cause.to_string(),
        }
    }
}
