//! A publish that is sent and waits for every stream's acknowledgement.

use async_nats::jetstream::context::PublishErrorKind;
use tokio::sync::oneshot;

use super::outbox::Sent;
use super::JetStreamError;
use crate::queue::{PublishOutcome, PublishReceipt};

/// A publish handed to the store's sender, not yet acknowledged by every stream.
#[derive(Debug)]
#[must_use = "a publish is acknowledged only after `durable()` returns Ok"]
pub struct JetStreamPending {
    pub(super) sent: oneshot::Receiver<Sent>,
    pub(super) paced: bool,
}

impl JetStreamPending {
    /// The store's sender is behind: a publisher that does not wait for confirms should wait
    /// for this one.
    pub fn paced(&self) -> bool {
        self.paced
    }

    /// Waits for every stream's acknowledgement. An error means some copy may be missing: the
    /// publisher must not be confirmed, and may retry the whole publish.
    pub async fn durable(self) -> Result<PublishReceipt, JetStreamError> {
        let acks = self
            .sent
            .await
            .map_err(|_| JetStreamError::nats("a publish", "the store's sender stopped"))??;
        let mut outcomes = Vec::with_capacity(acks.len());
        for ack in acks {
            outcomes.push(match ack.await {
                Ok(ack) if ack.duplicate => PublishOutcome::Duplicate,
                Ok(ack) => PublishOutcome::Enqueued { seq: ack.sequence },
                Err(e) if e.kind() == PublishErrorKind::Other && is_full(&e) => {
                    PublishOutcome::RejectedMaxLength
                }
                Err(e) => return Err(JetStreamError::nats("a publish", e)),
            });
        }
        Ok(PublishReceipt { outcomes })
    }
}

/// JetStream refused the message because the stream is at `max_messages` with discard-new.
/// The server says so only in text (error code 10077 covers every store failure).
fn is_full(e: &dyn std::error::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if c.to_string().contains("maximum messages exceeded") {
            return true;
        }
        cause = c.source();
    }
    false
}
