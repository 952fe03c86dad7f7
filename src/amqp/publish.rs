//! `basic.publish`, `basic.return` and publisher confirms.
//!
//! Ordering and group commit: the connection task awaits [`Broker::submit_batch`] itself, in
//! frame order, for the publishes to one exchange that one read holds — it routes them
//! (plugins included: a warm plugin call completes within the same poll, and a batch router
//! answers them all in one call) and *applies* each publish's batch — so messages enter their
//! queues in the order they were published. Only the wait for durability is handed to the
//! channel's confirmer task, which awaits the pending publishes in order and sends `basic.ack`
//! (or `basic.nack`) for each. Many publishes are thus in flight per channel and share one
//! flush, whatever their exchange type.
//!
//! Bounds: the confirmer's queue holds at most `max_inflight_publishes`; when it is full the
//! connection task waits, so it stops reading the socket — TCP pushes back on the publisher.
//! A publisher without confirms is held the same way while the store has more unflushed
//! relaxed writes than it allows (`Submitted::paced`).

use std::collections::VecDeque;
use std::sync::Arc;

use amq_protocol::protocol::{basic, AMQPClass};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::args::broker_error;
use super::channel::{gone, Channel, Incoming};
use super::convert::short;
use super::error::{code, AmqpError};
use super::outbound::Outbound;
use crate::broker::{Broker, BrokerError, Confirmation, Publish, Submitted};
use crate::message::Message;

/// One confirm the confirmer owes the publisher, in publish order.
pub(crate) enum Confirm {
    /// Known at once: `true` = ack.
    Ready(u64, bool),
    /// Ack once this publish is durable.
    Wait(u64, Confirmation),
}

impl Channel {
    /// Publishes whole messages to one exchange, in order, routed together
    /// ([`Broker::submit_batch`]: a router that takes batches is called once for all of them);
    /// each then gets its return if it was unroutable and `mandatory`, and its confirm. A
    /// message whose header does not convert fails the channel where it stands: the
    /// messages before it are published, the ones after it dropped, as a closing channel drops
    /// them.
    pub(crate) async fn publish_batch(&mut self, batch: Vec<Incoming>) -> Result<(), AmqpError> {
        let mut methods = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        let mut failed = None;
        for Incoming {
            method,
            header,
            body,
        } in batch
        {
            let header = header.expect("a complete message has its content header");
            match header.into_message(Bytes::from(body)) {
                Ok(message) => {
                    methods.push(method);
                    messages.push(message);
                }
                Err(e) => {
                    failed = Some(AmqpError::precondition_failed(e));
                    break;
                }
            }
        }
        if let Some(first) = methods.first() {
            let returned: Vec<Option<Message>> = methods
                .iter()
                .zip(&messages)
                .map(|(method, message)| method.mandatory.then(|| message.clone()))
                .collect();
            let seqs: Vec<Option<u64>> = methods.iter().map(|_| self.next_seq()).collect();
            let publishes = methods
                .iter()
                .zip(messages)
                .map(|(method, message)| Publish {
                    routing_key: method.routing_key.as_str(),
                    message,
                    mandatory: method.mandatory,
                })
                .collect();
            let broker: Arc<Broker> = self.shared.broker.clone();
            let exchange = first.exchange.as_str();
            // Routed and applied here, in frame order; only durability is awaited elsewhere.
            let results = broker.submit_batch(exchange, publishes).await;
            let each = methods.iter().zip(returned).zip(seqs).zip(results);
            for (((method, returned), seq), submitted) in each {
                self.published(method, returned, seq, submitted).await?;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The next publish's sequence number, in confirm mode.
    fn next_seq(&mut self) -> Option<u64> {
        self.confirm.then(|| {
            self.publish_seq += 1;
            self.publish_seq
        })
    }

    /// What a routed publish owes its publisher: the message back if it was unroutable and
    /// `mandatory`, its confirm in confirm mode (once durable), or, without confirms, a wait
    /// when the store is behind.
    async fn published(
        &mut self,
        method: &basic::Publish,
        returned: Option<Message>,
        seq: Option<u64>,
        submitted: Result<Submitted, BrokerError>,
    ) -> Result<(), AmqpError> {
        let confirm = match submitted {
            Ok(submitted) => {
                if submitted.decision().returned {
                    if let Some(message) = returned {
                        let ret = basic::Return {
                            reply_code: code::NO_ROUTE,
                            reply_text: short("NO_ROUTE"),
                            exchange: method.exchange.clone(),
                            routing_key: method.routing_key.clone(),
                        };
                        let frames = self.out.content_frames(
                            self.id,
                            AMQPClass::Basic(basic::AMQPMethod::Return(ret)),
                            &message,
                        );
                        self.out.send(frames).await.map_err(gone)?;
                    }
                }
                match seq {
                    Some(s) => Some(Confirm::Wait(s, submitted.confirmation())),
                    // Without confirms nobody waits: the batch is applied and will be flushed.
                    // Unless the store is behind: then this connection waits for the flush
                    // and stops reading, and TCP holds the publisher to the disk's pace.
                    None if submitted.paced() => {
                        if let Err(e) = submitted.durable().await {
                            tracing::warn!(error = %e, "publish failed");
                        }
                        None
                    }
                    None => None,
                }
            }
            Err(BrokerError::Rejected(why)) => {
                tracing::debug!(reason = %why, "publish rejected by policy");
                seq.map(|s| Confirm::Ready(s, false))
            }
            Err(e @ (BrokerError::ExchangeNotFound(_) | BrokerError::InternalExchange(_))) => {
                return Err(broker_error(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, "publish failed");
                seq.map(|s| Confirm::Ready(s, false))
            }
        };
        if let Some(confirm) = confirm {
            let tx = self.confirmer();
            tx.send(confirm)
                .await
                .map_err(|_| AmqpError::internal("confirmer stopped"))?;
        }
        Ok(())
    }

    /// The channel's confirmer task, started on first use.
    fn confirmer(&mut self) -> mpsc::Sender<Confirm> {
        if let Some(tx) = &self.confirms {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(self.shared.config.max_inflight_publishes.max(1));
        let task = tokio::spawn(confirm_loop(rx, self.out.clone(), self.id));
        self.tasks.push(task);
        self.confirms = Some(tx.clone());
        tx
    }
}

/// Await confirms in order and tell the publisher. Consecutive acks that are ready together
/// go out as one `basic.ack` with `multiple`.
async fn confirm_loop(mut rx: mpsc::Receiver<Confirm>, out: Outbound, channel: u16) {
    let mut ready: VecDeque<(u64, bool)> = VecDeque::new();
    while let Some(first) = rx.recv().await {
        ready.push_back(settle(first).await);
        // Drain what is already queued without waiting, to batch acks.
        while let Ok(next) = rx.try_recv() {
            ready.push_back(settle(next).await);
        }
        while let Some((tag, ok)) = ready.pop_front() {
            let method = if ok {
                // Extend over a run of acks.
                let mut last = tag;
                while let Some(&(t, true)) = ready.front() {
                    last = t;
                    ready.pop_front();
                }
                basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: last,
                    multiple: last != tag,
                })
            } else {
                basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: tag,
                    multiple: false,
                    requeue: false,
                })
            };
            if out.method(channel, AMQPClass::Basic(method)).await.is_err() {
                return;
            }
        }
    }
}

async fn settle(confirm: Confirm) -> (u64, bool) {
    match confirm {
        Confirm::Ready(tag, ok) => (tag, ok),
        Confirm::Wait(tag, confirmation) => match confirmation.acked().await {
            Ok(acked) => (tag, acked),
            Err(e) => {
                tracing::warn!(error = %e, "publish failed before it was durable");
                (tag, false)
            }
        },
    }
}
