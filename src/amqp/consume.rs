//! `basic.consume`/`cancel`/`get`/`ack`/`nack`/`reject`/`recover`, and delivery tags.
//!
//! The queue engine numbers deliveries per consumer; AMQP numbers them per channel. The
//! channel's [`Tags`] maps each channel tag to (source, consumer tag). Consumer tags grow with
//! channel tags for any one consumer, so "all of this consumer's tags up to N" is exactly the
//! part of a channel-wide `multiple` that belongs to it.
//!
//! Each `basic.consume` runs a task that owns its [`Consumer`]: it pushes deliveries to the
//! outbound queue (waiting when that is full, which holds the consumer at its prefetch) and
//! applies settlements sent to it by the connection task. Dropping the task drops the consumer,
//! which returns its unacknowledged messages to the queue.
//!
//! Invariant: a settlement the client sent before `basic.cancel` or `channel.close` is applied
//! before the consumer is dropped. The task takes settlements before deliveries, and a cancel
//! closes the task's queue and waits for it to drain (for at most [`STOP_GRACE`]) instead of
//! aborting it with acknowledgements still queued, which would send acknowledged messages back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{basic, AMQPClass};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::args::queue_error;
use super::channel::Channel;
use super::convert::short;
use super::declare::ready;
use super::error::AmqpError;
use super::outbound::Outbound;
pub(crate) use super::tags::{Source, Tags};
use crate::auth::{Access, Resource};
use crate::queue::{Consumer, ConsumerOptions, Delivery, QueueError, QueueName, StoreConsumer};

/// How long a cancel waits for a consumer's task to apply what was settled before it. The task
/// is only ever slower than this when it is stuck handing a delivery to a client that does not
/// read; it is then aborted, and its unsettled messages return to the queue.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A settlement for a consumer task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum How {
    Ack,
    Requeue,
    Reject,
}

#[derive(Debug)]
pub(crate) struct Settle {
    tag: u64,
    multiple: bool,
    how: How,
}

#[derive(Debug)]
pub(crate) struct ConsumerHandle {
    pub queue: QueueName,
    settle: mpsc::UnboundedSender<Settle>,
    task: JoinHandle<()>,
    _registered: super::registry::Registered,
}

/// Settles on a `basic.get` consumer (embedded store only).
fn apply(consumer: &Consumer, s: &Settle) {
    let r = match s.how {
        How::Ack => consumer.ack(s.tag, s.multiple),
        How::Requeue => consumer.nack(s.tag, s.multiple, true),
        How::Reject => consumer.nack(s.tag, s.multiple, false),
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "settlement not applied");
    }
}

/// Settles on a `basic.consume` consumer, of either store.
async fn apply_to(consumer: &mut StoreConsumer, s: &Settle) {
    let r = match s.how {
        How::Ack => consumer.ack(s.tag, s.multiple).await,
        How::Requeue => consumer.nack(s.tag, s.multiple, true).await,
        How::Reject => consumer.nack(s.tag, s.multiple, false).await,
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "settlement not applied");
    }
}

impl Channel {
    pub(crate) async fn basic_method(&mut self, m: basic::AMQPMethod) -> Result<(), AmqpError> {
        match m {
            basic::AMQPMethod::Consume(c) => self.consume(c).await,
            basic::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.to_string();
                self.cancel(&tag).await;
                if !c.nowait {
                    let ok = basic::CancelOk {
                        consumer_tag: c.consumer_tag,
                    };
                    self.send(AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)))
                        .await?;
                }
                Ok(())
            }
            basic::AMQPMethod::Get(g) => self.get(g).await,
            basic::AMQPMethod::Ack(a) => self.settle(a.delivery_tag, a.multiple, How::Ack),
            basic::AMQPMethod::Nack(n) => {
                let how = if n.requeue { How::Requeue } else { How::Reject };
                self.settle(n.delivery_tag, n.multiple, how)
            }
            basic::AMQPMethod::Reject(r) => {
                let how = if r.requeue { How::Requeue } else { How::Reject };
                self.settle(r.delivery_tag, false, how)
            }
            basic::AMQPMethod::Recover(_) => {
                self.settle(0, true, How::Requeue)?;
                self.send(AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
                    basic::RecoverOk {},
                )))
                .await
            }
            basic::AMQPMethod::RecoverAsync(_) => self.settle(0, true, How::Requeue),
            _ => Err(AmqpError::command_invalid(
                "unexpected basic method from a client",
            )),
        }
    }

    async fn consume(&mut self, c: basic::Consume) -> Result<(), AmqpError> {
        let queue = self.queue_name(c.queue.as_str())?;
        self.check_owner(&queue)?;
        self.authorize(Access::Read, Resource::Queue(queue.as_str()))?;
        let mut tag = c.consumer_tag.to_string();
        if tag.is_empty() {
            self.shared.next_tag_seq(&mut tag);
        }
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let queues = self.shared.broker.queues();
        let stats = queues.stats(&queue).map_err(queue_error)?;
        {
            let mut exclusive = self.shared.exclusive_consumers.lock();
            if exclusive.contains(&queue) || (c.exclusive && stats.consumers > 0) {
                return Err(AmqpError::access_refused(format!(
                    "queue '{queue}' in vhost '/' in exclusive use"
                )));
            }
            if c.exclusive {
                exclusive.insert(queue.clone());
            }
        }
        let options = ConsumerOptions {
            prefetch: self.prefetch,
            push: true,
        };
        let consumer = match queues.consume(&queue, options).await {
            Ok(c) => c,
            Err(e) => {
                self.shared.exclusive_consumers.lock().remove(&queue);
                return Err(queue_error(e));
            }
        };
        // Listed before consume-ok goes out: a client that has its consume-ok
        // finds itself in `/api/consumers`. If the send fails the guard unlists it.
        let registered = self
            .shared
            .registry
            .add_consumer(super::registry::ConsumerInfo {
                connection: self.conn,
                channel: self.id,
                tag: tag.clone(),
                queue: queue.to_string(),
                prefetch: self.prefetch,
                no_ack: c.no_ack,
            });
        if !c.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: short(tag.clone()),
            };
            self.send(AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)))
                .await?;
        }
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(deliver_loop(
            consumer,
            Arc::from(tag.as_str()),
            c.no_ack,
            self.id,
            self.out.clone(),
            self.tags.clone(),
            settle_rx,
        ));
        if c.exclusive {
            self.exclusive_consumers.insert(queue.clone());
        }
        self.consumers.insert(
            tag,
            ConsumerHandle {
                queue,
                settle: settle_tx,
                task,
                _registered: registered,
            },
        );
        Ok(())
    }

    /// Stop a consumer; its unacknowledged messages return to the queue.
    pub(crate) async fn cancel(&mut self, tag: &str) {
        let Some(handle) = self.consumers.remove(tag) else {
            return;
        };
        let ConsumerHandle {
            queue,
            settle,
            mut task,
            _registered,
        } = handle;
        // Closing the queue ends the task once it has applied what is in it.
        drop(settle);
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        self.tags.lock().kill(&Source::Consumer(tag.into()));
        if self.exclusive_consumers.remove(&queue) {
            self.shared.exclusive_consumers.lock().remove(&queue);
        }
        self.shared.maybe_auto_delete(&queue);
    }

    async fn get(&mut self, g: basic::Get) -> Result<(), AmqpError> {
        let queue = self.queue_name(g.queue.as_str())?;
        self.check_owner(&queue)?;
        self.authorize(Access::Read, Resource::Queue(queue.as_str()))?;
        // basic.get pulls one message at a time: on JetStream each would be a pull request and
        // a wait for "empty", so it is the embedded store's alone; consumers work on both.
        let queues = self.shared.broker.queues().embedded().map_err(|_| {
            AmqpError::not_implemented("basic.get on the JetStream store: use basic.consume")
        })?;
        let pull = ConsumerOptions {
            prefetch: 0,
            push: false,
        };
        let mut fresh = false;
        if !self.getters.contains_key(&queue) {
            let consumer = queues.consume(&queue, pull).map_err(queue_error)?;
            self.getters.insert(queue.clone(), consumer);
            fresh = true;
        }
        let delivery = match self.getters[&queue].get() {
            // The queue was deleted (and maybe declared again) since this getter was made.
            Err(QueueError::Deleted) if !fresh => {
                self.getters.remove(&queue);
                let consumer = queues.consume(&queue, pull).map_err(queue_error)?;
                self.getters.insert(queue.clone(), consumer);
                self.getters[&queue].get().map_err(queue_error)?
            }
            other => other.map_err(queue_error)?,
        };
        let getter = &self.getters[&queue];
        let Some(d) = delivery else {
            let empty = basic::AMQPMethod::GetEmpty(basic::GetEmpty {});
            return self.send(AMQPClass::Basic(empty)).await;
        };
        let tag = if g.no_ack {
            getter.ack(d.tag, false).map_err(queue_error)?;
            self.tags.lock().assign(Source::Get(queue.clone()), None)
        } else {
            self.tags
                .lock()
                .assign(Source::Get(queue.clone()), Some(d.tag))
        };
        let stats = queues.stats(&queue).map_err(queue_error)?;
        let ok = basic::GetOk {
            delivery_tag: tag,
            redelivered: d.redelivered,
            exchange: short(d.exchange.as_str()),
            routing_key: short(routing_key(&d)),
            message_count: ready(&stats),
        };
        let frames = self.out.content_frames(
            self.id,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)),
            &d.message,
        );
        self.out.send(frames).await.map_err(super::channel::gone)
    }

    /// Settle channel tag `tag` (all up to it with `multiple`; all with `multiple` and 0).
    fn settle(&mut self, tag: u64, multiple: bool, how: How) -> Result<(), AmqpError> {
        let picked: BTreeMap<u64, (Source, u64)> = {
            let mut tags = self.tags.lock();
            if tag != 0 && !tags.unacked.contains_key(&tag) {
                if tags.dead.remove(&tag) {
                    return Ok(());
                }
                if !(multiple && tags.dead.iter().any(|t| *t <= tag)) {
                    return Err(AmqpError::precondition_failed(format!(
                        "unknown delivery tag {tag}"
                    )));
                }
            }
            if multiple {
                let upto = if tag == 0 { u64::MAX } else { tag };
                tags.dead.retain(|t| *t > upto);
                tags.take_upto(upto)
            } else {
                tags.unacked.remove_entry(&tag).into_iter().collect()
            }
        };
        // Per source, the highest consumer tag: with `multiple` it covers the rest.
        let mut per_source: Vec<(Source, u64)> = Vec::new();
        for (_, (source, ctag)) in picked {
            match per_source.iter_mut().find(|(s, _)| *s == source) {
                Some((_, max)) => *max = (*max).max(ctag),
                None => per_source.push((source, ctag)),
            }
        }
        for (source, ctag) in per_source {
            let s = Settle {
                tag: ctag,
                multiple,
                how,
            };
            match source {
                Source::Consumer(name) => {
                    if let Some(h) = self.consumers.get(&*name) {
                        let _ = h.settle.send(s);
                    }
                }
                Source::Get(queue) => {
                    if let Some(getter) = self.getters.get(&queue) {
                        apply(getter, &s);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Push deliveries of one consumer to the client and apply its settlements.
async fn deliver_loop(
    mut consumer: StoreConsumer,
    tag: Arc<str>,
    no_ack: bool,
    channel: u16,
    out: Outbound,
    tags: Arc<Mutex<Tags>>,
    mut settle: mpsc::UnboundedReceiver<Settle>,
) {
    loop {
        tokio::select! {
            // Settlements first: a cancel waits for the ones sent before it (see the module).
            biased;
            s = settle.recv() => match s {
                Some(s) => apply_to(&mut consumer, &s).await,
                None => return,
            },
            d = consumer.recv() => {
                let d = match d {
                    Ok(d) => d,
                    Err(e) => {
                        // The store failed under this consumer (NATS gone): cancel it, so the
                        // client subscribes again (to this node or another) instead of waiting.
                        tracing::warn!(error = %e, consumer = %tag, "consumer cancelled: the store failed");
                        None
                    }
                };
                let Some(d) = d else {
                    // The queue was deleted: tell the client (consumer_cancel_notify).
                    let cancel = basic::Cancel { consumer_tag: short(&*tag), nowait: true };
                    let _ = out.method(channel, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel))).await;
                    return;
                };
                if !deliver(&mut consumer, &tag, no_ack, channel, &out, &tags, d).await {
                    return;
                }
                // The deliveries queued behind it go out in one run, without a new `select!`
                // (and its two futures) per delivery; a settlement that arrives meanwhile
                // still goes first.
                while settle.is_empty() {
                    let Some(d) = consumer.try_recv() else { break };
                    if !deliver(&mut consumer, &tag, no_ack, channel, &out, &tags, d).await {
                        return;
                    }
                }
            }
        }
    }
}

async fn deliver(
    consumer: &mut StoreConsumer,
    tag: &Arc<str>,
    no_ack: bool,
    channel: u16,
    out: &Outbound,
    tags: &Mutex<Tags>,
    d: Delivery,
) -> bool {
    let source = Source::Consumer(tag.clone());
    let channel_tag = tags.lock().assign(source, (!no_ack).then_some(d.tag));
    let deliver = basic::Deliver {
        consumer_tag: short(&**tag),
        delivery_tag: channel_tag,
        redelivered: d.redelivered,
        exchange: short(d.exchange.as_str()),
        routing_key: short(routing_key(&d)),
    };
    let frames = out.content_frames(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)),
        &d.message,
    );
    if out.send(frames).await.is_err() {
        return false;
    }
    if no_ack {
        // Settled once handed to the writer: the outbound bound keeps memory bounded.
        let _ = consumer.ack(d.tag, false).await;
    }
    true
}

/// The routing key a delivery reports: the one it was published with (RabbitMQ reports the
/// first of its keys; a dead letter carries its dead-letter key or its original keys).
fn routing_key(d: &Delivery) -> &str {
    d.routing_keys.first().map_or("", String::as_str)
}

impl ConsumerHandle {
    pub(crate) fn abort(&self) {
        self.task.abort();
    }
}
