//! The ordered sending of publishes: one task per store writes every stream copy to the NATS
//! connection in the order the broker submitted them.
//!
//! Why a task: the broker submits a publish synchronously (its order is the AMQP channel's
//! order) and waits for durability later. Sending in submission order keeps two messages of
//! one channel into one queue in order (JetStream keeps one connection's publishes in order); waiting for the acknowledgements happens in
//! [`JetStreamPending::durable`](super::JetStreamPending::durable), concurrently for every
//! publish in flight, so one round trip is not paid per message.
//!
//! Invariant: a submitted publish is answered exactly once — with the acknowledgement futures
//! of all its copies, or with the error that stopped it (then none of its later copies was
//! sent, and the publisher is not confirmed).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::JetStreamError;

/// One stream copy of a publish.
#[derive(Debug)]
pub(super) struct Copy {
    pub subject: String,
    /// `Nats-Msg-Id`: what makes a retried publish idempotent.
    pub id: String,
    pub payload: Bytes,
    /// The queue, for error messages.
    pub queue: String,
}

pub(super) type Sent = Result<Vec<PublishAckFuture>, JetStreamError>;

struct Job {
    copies: Vec<Copy>,
    reply: oneshot::Sender<Sent>,
}

/// Publishes waiting to be sent beyond which a publisher that does not wait for confirms is
/// made to wait (see [`Outbox::submit`]).
const PACE_ABOVE: usize = 4096;

/// The sending end; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Outbox {
    jobs: mpsc::UnboundedSender<Job>,
    /// Submitted and not yet sent.
    backlog: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("copies", &self.copies.len())
            .finish()
    }
}

impl Outbox {
    /// Starts the sending task on the current runtime. It ends when every `Outbox` clone is
    /// dropped. Memory is bounded by the publishers: an AMQP channel holds at most its
    /// unconfirmed window in flight.
    pub fn start(js: Context) -> Outbox {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let backlog = Arc::new(AtomicUsize::new(0));
        let sent = backlog.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let result = send_all(&js, job.copies).await;
                sent.fetch_sub(1, Ordering::Relaxed);
                let _ = job.reply.send(result);
            }
        });
        Outbox { jobs, backlog }
    }

    /// Queues `copies` for sending; the receiver yields their acknowledgement futures. The
    /// flag says the backlog is long: the caller should wait for this publish before the next
    /// (confirming publishers always do; this holds back the others).
    pub fn submit(&self, copies: Vec<Copy>) -> (oneshot::Receiver<Sent>, bool) {
        let (reply, rx) = oneshot::channel();
        let backlog = self.backlog.fetch_add(1, Ordering::Relaxed);
        // The task ends only when every sender is gone, and `self` is one.
        let _ = self.jobs.send(Job { copies, reply });
        (rx, backlog >= PACE_ABOVE)
    }
}

async fn send_all(js: &Context, copies: Vec<Copy>) -> Sent {
    let mut acks = Vec::with_capacity(copies.len());
    for copy in copies {
        let publish = PublishMessage::build()
            .payload(copy.payload)
            .message_id(copy.id);
        let ack = js
            .send_publish(copy.subject, publish)
            .await
            .map_err(|e| JetStreamError::nats(format!("publishing to queue {}", copy.queue), e))?;
        acks.push(ack);
    }
    Ok(acks)
}
