//! [`Queues`]: the engine's public handle.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::cx::{Cx, Fresh};
use super::engine::{Engine, Inner};
use super::envelope::{self, EnvelopeHeader};
use super::publish::{Pending, PublishItem, PublishOutcome, PublishReceipt};
use super::recovery::{self, QueueRecord};
use super::{Clock, Consumer, ConsumerOptions, Overflow, QueueConfig, QueueError, QueueName};
use super::{EnqueueOptions, SystemClock};
use crate::message::Message;
use crate::store::{keys, Durability, Store, StoreConfig};

/// How to open the engine.
#[derive(Debug, Clone)]
pub struct QueuesOptions {
    pub store: StoreConfig,
    pub clock: Arc<dyn Clock>,
    /// How often a background thread runs [`Queues::process_due`] (retry delays, scheduled
    /// messages, TTL at the head). `None`: never; the caller drives time (tests).
    pub tick: Option<Duration>,
    /// Most queues that may exist at once (every queue counts, the broker's own included);
    /// declaring one more is [`QueueError::TooManyQueues`]. Each queue costs memory and a
    /// catalog entry, so an unbounded number lets one client exhaust the broker.
    pub max_queues: usize,
}

/// Default of [`QueuesOptions::max_queues`].
pub const DEFAULT_MAX_QUEUES: usize = 100_000;

impl Default for QueuesOptions {
    fn default() -> Self {
        QueuesOptions {
            store: StoreConfig::default(),
            clock: Arc::new(SystemClock),
            tick: Some(Duration::from_millis(5)),
            max_queues: DEFAULT_MAX_QUEUES,
        }
    }
}

/// Statistics of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// All stored messages: waiting, delayed and in flight.
    pub messages: u64,
    /// Delivered and not yet settled.
    pub unacked: u64,
    /// Known to be waiting for a retry delay or a scheduled time (scheduled messages not yet
    /// reached by the cursor are not counted here).
    pub delayed: u64,
    pub consumers: u64,
    /// Messages stored into the queue since the engine opened (publishes, dead-letterings in).
    pub published_total: u64,
    /// Deliveries (first and repeated) since the engine opened.
    pub delivered_total: u64,
    /// Messages this queue dead-lettered (or discarded for want of a target) since open.
    pub dead_lettered_total: u64,
}

/// The durable queue engine. Cheap to clone; all clones share one store.
///
/// Keep a `Queues` handle alive while the engine is in use: the timer thread stops when the
/// last handle is dropped. The store closes when the last handle and the last [`Consumer`] are
/// gone.
#[derive(Debug, Clone)]
pub struct Queues {
    pub(super) inner: Arc<Inner>,
    _timer: Arc<Timer>,
}

#[derive(Debug)]
struct Timer {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Queues {
    /// Open the data directory (creating it when missing or empty) and recover every queue.
    pub fn open(path: impl AsRef<Path>, options: QueuesOptions) -> Result<Queues, QueueError> {
        let store = Store::open(path, options.store)?;
        let now = options.clock.now_ms();
        let mut engine = Engine::default();
        for mut q in recovery::load(&store, now)? {
            q.last_used_ms = now; // x-expires: the clock starts afresh at open
            engine.by_name.insert(q.name.clone(), q.id);
            engine.queues.insert(q.id, q);
        }
        let inner = Arc::new(Inner {
            store,
            max_queues: options.max_queues,
            clock: options.clock,
            engine: Mutex::new(engine),
            hot_budget: Default::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = options.tick.map(|tick| {
            let weak = Arc::downgrade(&inner);
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("switchyard-queue-timer".into())
                .spawn(move || timer_loop(&weak, &stop, tick))
                .expect("spawn timer thread")
        });
        Ok(Queues {
            inner,
            _timer: Arc::new(Timer {
                stop,
                thread: Mutex::new(thread),
            }),
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Declare a queue. Idempotent with the same configuration; a different one is
    /// [`QueueError::ConfigMismatch`]. The declaration is flushed before this returns.
    pub fn declare(&self, name: &QueueName, config: QueueConfig) -> Result<(), QueueError> {
        config.validate(name).map_err(QueueError::InvalidConfig)?;
        let store = &self.inner.store;
        store.check()?;
        let now = self.inner.clock.now_ms();
        let mut eng = self.inner.engine.lock();
        if let Some(&id) = eng.by_name.get(name) {
            let q = eng.queues.get_mut(&id).expect("indexed queue");
            return if q.config == config {
                q.last_used_ms = now; // a redeclaration counts as use
                Ok(())
            } else {
                Err(QueueError::ConfigMismatch(name.to_string()))
            };
        }
        if eng.by_name.len() >= self.inner.max_queues {
            return Err(QueueError::TooManyQueues {
                name: name.to_string(),
                limit: self.inner.max_queues,
            });
        }
        let id = store.next_id("next-queue-id")?;
        let rec = QueueRecord {
            id,
            config: config.clone(),
        };
        store.queues.insert(name.as_str(), rec.encode()?)?;
        if let Err(e) = store.flush_now() {
            // Not declared: take the record back, so a later flush cannot bring it to life.
            let _ = store.queues.remove(name.as_str());
            return Err(e.into());
        }
        eng.by_name.insert(name.clone(), id);
        let mut q = super::state::QueueState::new(id, name.clone(), config);
        q.last_used_ms = now;
        eng.queues.insert(id, q);
        Ok(())
    }

    /// Delete a queue and its messages; its consumers' `recv` returns `None`. Returns the
    /// number of messages deleted.
    pub fn delete(&self, name: &QueueName) -> Result<u64, QueueError> {
        let (n, _) = self.inner.op(None, |eng, cx| delete_in(eng, cx, name))?;
        Ok(n)
    }

    /// Delete every queue whose [`QueueConfig::expires_ms`] has passed since it was last used
    /// (declared, consumed from, read with `get`) and that has no push consumer now; returns
    /// their names. Checked and deleted under one lock, so a consumer arriving meanwhile
    /// either keeps its queue or finds it gone — never a half-deleted one. Callers (the
    /// broker) remove what else refers to these queues.
    pub fn delete_expired(&self) -> Result<Vec<QueueName>, QueueError> {
        let (names, _) = self.inner.op(None, |eng, cx| {
            let names = eng.expired(cx.now);
            for name in &names {
                delete_in(eng, cx, name)?;
            }
            Ok(names)
        })?;
        Ok(names)
    }

    /// Bytes the store holds on disk (catalog and message log).
    pub fn disk_bytes(&self) -> Result<u64, QueueError> {
        Ok(self.inner.store.size_on_disk()?)
    }

    /// `Err` once the store refuses writes (after a failed write or flush).
    pub fn health(&self) -> Result<(), QueueError> {
        Ok(self.inner.store.check()?)
    }

    /// Names of all queues.
    pub fn list(&self) -> Vec<QueueName> {
        let mut v: Vec<_> = self.inner.engine.lock().by_name.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether a queue named `name` exists. Routing asks this for every destination a plugin
    /// picks, so it neither allocates nor clones a configuration.
    pub fn exists(&self, name: &str) -> bool {
        self.inner.engine.lock().by_name.contains_key(name)
    }

    /// A queue's configuration.
    pub fn config(&self, name: &QueueName) -> Result<QueueConfig, QueueError> {
        let eng = self.inner.engine.lock();
        let id = eng.queue(name)?;
        Ok(eng.queues[&id].config.clone())
    }

    pub fn stats(&self, name: &QueueName) -> Result<QueueStats, QueueError> {
        let eng = self.inner.engine.lock();
        let q = &eng.queues[&eng.queue(name)?];
        Ok(QueueStats {
            messages: q.len,
            unacked: q.inflight.len() as u64,
            delayed: q.delayed.len() as u64,
            consumers: q.consumers.len() as u64,
            published_total: q.totals.published,
            delivered_total: q.totals.delivered,
            dead_lettered_total: q.totals.dead_lettered,
        })
    }

    /// Apply a publish fan-out as ONE atomic write and return before it is durable.
    /// Await [`Pending::durable`] before acknowledging the publisher.
    ///
    /// Every queue must exist (else nothing is stored). Items refused by dedup or max-length
    /// are reported per item in the receipt; the others are stored.
    pub fn enqueue(&self, items: Vec<PublishItem>) -> Result<Pending, QueueError> {
        // Encode outside the lock: it is the CPU-heavy part of a publish.
        let encoded = items
            .iter()
            .map(|it| it.message.encode())
            .collect::<Result<Vec<_>, _>>()?;
        let default = self.inner.store.config().durability;
        let ((outcomes, durability), ticket) = self.inner.op(None, |eng, cx| {
            let ids = items
                .iter()
                .map(|it| eng.queue(&it.queue))
                .collect::<Result<Vec<_>, _>>()?;
            let mut durability = Durability::Relaxed;
            let mut outcomes = Vec::with_capacity(items.len());
            for ((item, bytes), id) in items.into_iter().zip(&encoded).zip(ids) {
                let q = eng.queues.get_mut(&id).expect("resolved queue");
                // Before dedup: a duplicate is acknowledged only once its original is as durable.
                durability = durability.strictest(q.config.durability.unwrap_or(default));
                let msg_id = item.message.id.as_str();
                if q.config.dedup_window_ms.is_some() {
                    q.prune_dedup(cx);
                    if q.dedup.contains_key(msg_id) {
                        outcomes.push(PublishOutcome::Duplicate);
                        continue;
                    }
                }
                if let Some(max) = q.config.max_length {
                    if q.waiting() >= max {
                        if q.config.overflow == Overflow::RejectPublish {
                            outcomes.push(PublishOutcome::RejectedMaxLength);
                            continue;
                        }
                        while q.waiting() >= max && q.drop_head(cx)? {}
                    }
                }
                if let Some(window) = q.config.dedup_window_ms {
                    let exp = cx.now.saturating_add(window);
                    q.dedup.insert(msg_id.to_owned(), exp);
                    q.dedup_order.push_back((exp, msg_id.to_owned()));
                    cx.insert(&keys::dedup(id, msg_id), exp.to_be_bytes().to_vec());
                }
                let opts = &item.options;
                // Saturating: a router plugin picks the delay, and u64::MAX must mean "not in
                // this lifetime", not wrap around to "now" (or panic in a debug build).
                let not_before = [
                    opts.not_before_ms,
                    opts.delay_ms.map(|d| cx.now.saturating_add(d)),
                ]
                .into_iter()
                .flatten()
                .max()
                .filter(|&t| t > cx.now);
                let header = EnvelopeHeader {
                    enqueued_ms: cx.now,
                    not_before_ms: not_before,
                    expires_ms: q.expiry(cx.now, item.message.properties.expiration_ms),
                    deliveries: 0,
                    exchange: opts.exchange.clone(),
                    routing_keys: opts.routing_keys.clone(),
                };
                let seq = q.next_seq;
                q.next_seq += 1;
                let key = keys::message(id, seq);
                let value = envelope::encode(&header, bytes)?;
                if q.consumers.is_empty() {
                    cx.insert(&key, value);
                } else {
                    let message = item.message;
                    cx.insert_fresh(key, value, Box::new(Fresh { header, message }));
                }
                q.len += 1;
                q.totals.published += 1;
                cx.touched.insert(id);
                outcomes.push(PublishOutcome::Enqueued { seq });
            }
            // One operation is one frame: a fan-out lands in all its queues or in none.
            Ok((outcomes, durability))
        })?;
        let stored = outcomes
            .iter()
            .any(|o| o.is_stored() || *o == PublishOutcome::Duplicate);
        let (ticket, paced) = match (stored, ticket) {
            (true, _) => match self.inner.store.commit(durability) {
                Some(t) => (Some(t), false),
                // Relaxed: no wait, unless the store is too far behind.
                None => match self.inner.store.pace() {
                    Some(t) => (Some(t), true),
                    None => (None, false),
                },
            },
            (false, t) => (t, false),
        };
        Ok(Pending {
            receipt: PublishReceipt { outcomes },
            ticket,
            paced,
        })
    }

    /// [`enqueue`](Queues::enqueue) and wait until durable.
    pub async fn publish_batch(
        &self,
        items: Vec<PublishItem>,
    ) -> Result<PublishReceipt, QueueError> {
        self.enqueue(items)?.durable().await
    }

    /// Publish one message to one queue (the 1-element batch).
    pub async fn publish(
        &self,
        queue: &QueueName,
        message: Message,
        options: EnqueueOptions,
    ) -> Result<PublishOutcome, QueueError> {
        let item = PublishItem {
            queue: queue.clone(),
            message,
            options,
        };
        let receipt = self.publish_batch(vec![item]).await?;
        Ok(receipt.outcomes[0])
    }

    /// Start consuming `queue`.
    pub fn consume(
        &self,
        queue: &QueueName,
        options: ConsumerOptions,
    ) -> Result<Consumer, QueueError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, _) = self.inner.op(None, |eng, cx| {
            let qid = eng.queue(queue)?;
            Ok(eng.add_consumer(qid, options, tx, cx))
        })?;
        Ok(Consumer {
            inner: self.inner.clone(),
            id,
            queue: queue.clone(),
            rx,
        })
    }

    /// Run time-driven work now: due retries and scheduled messages become ready and are
    /// dispatched; expired messages at the head of each queue are dead-lettered. The timer
    /// thread calls this every tick; tests call it after advancing a manual clock.
    pub fn process_due(&self) -> Result<(), QueueError> {
        process_due(&self.inner)
    }
}

fn delete_in(eng: &mut Engine, cx: &mut Cx<'_>, name: &QueueName) -> Result<u64, QueueError> {
    let id = eng.queue(name)?;
    // Declaration first: a crash halfway leaves unreachable keys, never a half queue.
    cx.store.queues.remove(name.as_str())?;
    cx.store.flush_now()?;
    eng.by_name.remove(name);
    let q = eng.queues.remove(&id).expect("indexed queue");
    for cid in &q.consumers {
        eng.consumers.remove(cid);
    }
    for kind in [keys::MSG, keys::HWM, keys::DEDUP] {
        for k in cx.store.data.scan_keys(&keys::queue_prefix(kind, id)) {
            cx.remove(&k);
        }
    }
    Ok(q.len)
}

fn process_due(inner: &Inner) -> Result<(), QueueError> {
    inner.op(None, |eng, cx| {
        for q in eng.queues.values_mut() {
            if q.waiting() > 0 {
                if let Some(r) = q.next_ready(cx)? {
                    q.ready.insert(r.seq, r.deliveries);
                }
                cx.touched.insert(q.id);
            }
        }
        Ok(())
    })?;
    Ok(())
}

fn timer_loop(inner: &Weak<Inner>, stop: &AtomicBool, tick: Duration) {
    // A lasting failure (a full disk) would log every tick: log each distinct error once.
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        let Some(inner) = inner.upgrade() else { return };
        match process_due(&inner) {
            Err(e) => {
                let e = e.to_string();
                if last_error.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, "timer tick failed (repeats are not logged)");
                    last_error = Some(e);
                }
            }
            Ok(_) => last_error = None,
        }
    }
}
