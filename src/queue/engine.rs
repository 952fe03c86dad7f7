//! The engine's shared state and the operations that span queues and consumers.
//!
//! Why one lock for everything: dead-lettering and fan-out publish touch several queues in one
//! atomic batch; a single `Mutex<Engine>` makes that trivially consistent (no lock ordering)
//! and every critical section is short — in-memory index work plus a sled batch, never a
//! flush. Durability waits happen after the lock is released. On 2 cores sled itself is the
//! bottleneck, not this lock (see `docs/benchmarks.md`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::consumer::Settle;
use super::cx::Cx;
use super::death::DeadLetterReason;
use super::envelope::{self, EnvelopeHeader};
use super::hot::HotBudget;
use super::state::{ConsumerId, QueueState, Ready};
use super::{Clock, ConsumerOptions, Delivery, QueueError, QueueName};
use crate::store::{keys, Durability, Store, Ticket};

#[derive(Debug)]
pub(crate) struct ConsumerState {
    pub queue: u32,
    pub opts: ConsumerOptions,
    pub tx: mpsc::UnboundedSender<Delivery>,
    pub next_tag: u64,
    /// tag -> (seq, this delivery's count)
    pub unacked: BTreeMap<u64, (u64, u32)>,
}

impl ConsumerState {
    fn has_credit(&self) -> bool {
        self.opts.push
            && (self.opts.prefetch == 0 || self.unacked.len() < self.opts.prefetch as usize)
    }
}

/// A map the engine looks up on every publish (a queue by name and by id, a staged record by
/// key): hashed with foldhash, seeded per process, not SipHash, whose hashing was most of such a
/// lookup. The keys an outsider picks are queue names, of clients allowed to declare queues and
/// at most `max_queues` of them, against a seed they do not know.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub(crate) struct Engine {
    pub by_name: FastMap<QueueName, u32>,
    pub queues: FastMap<u32, QueueState>,
    pub consumers: FastMap<ConsumerId, ConsumerState>,
    pub next_consumer: ConsumerId,
}

/// Shared by [`Queues`](super::Queues) handles and consumers.
#[derive(Debug)]
pub(crate) struct Inner {
    pub store: Store,
    /// See [`QueuesOptions::max_queues`](super::QueuesOptions::max_queues).
    pub max_queues: usize,
    pub clock: Arc<dyn Clock>,
    pub engine: Mutex<Engine>,
    pub hot_budget: HotBudget,
}

/// Most dispatch rounds per operation; dead-letter cycles (A → B → A with zero TTLs) stop
/// here and continue at the next timer tick instead of looping forever.
const MAX_ROUNDS: usize = 16;

impl Inner {
    /// Run one operation: `f` stages writes in a [`Cx`]; then staged dead-letter moves are
    /// placed, the batch applied atomically, consumers of touched queues served, and the
    /// deliveries sent. Returns `f`'s result and, for `Some(durability)`, the flush ticket.
    pub fn op<T>(
        &self,
        durability: Option<Durability>,
        f: impl FnOnce(&mut Engine, &mut Cx<'_>) -> Result<T, QueueError>,
    ) -> Result<(T, Option<Ticket>), QueueError> {
        self.store.check()?;
        let mut eng = self.engine.lock();
        let mut cx = Cx::new(&self.store, &self.hot_budget, self.clock.now_ms());
        let out = f(&mut eng, &mut cx)?;
        let mut wrote = false;
        for _ in 0..MAX_ROUNDS {
            eng.settle_deaths(&mut cx)?;
            wrote |= cx.apply()?;
            if cx.touched.is_empty() {
                break;
            }
            for qid in std::mem::take(&mut cx.touched) {
                eng.dispatch(qid, &mut cx)?;
            }
        }
        eng.settle_deaths(&mut cx)?;
        wrote |= cx.apply()?;
        eng.keep_hot(&mut cx);
        cx.send_all();
        drop(eng);
        let ticket = match durability {
            Some(d) => self.store.commit(d),
            None if wrote => self.store.commit(Durability::Relaxed),
            None => None,
        };
        Ok((out, ticket))
    }

    pub fn settle(
        &self,
        cid: ConsumerId,
        tag: u64,
        multiple: bool,
        how: Settle,
    ) -> Result<usize, QueueError> {
        self.op(None, |eng, cx| eng.settle(cid, tag, multiple, how, cx))
            .map(|(n, _)| n)
    }

    pub fn get(&self, cid: ConsumerId) -> Result<Option<Delivery>, QueueError> {
        self.op(None, |eng, cx| eng.get(cid, cx)).map(|(d, _)| d)
    }

    pub fn unacked(&self, cid: ConsumerId) -> usize {
        let eng = self.engine.lock();
        eng.consumers.get(&cid).map_or(0, |c| c.unacked.len())
    }

    pub fn cancel(&self, cid: ConsumerId) {
        if let Err(e) = self.op(None, |eng, cx| eng.cancel(cid, cx)) {
            tracing::error!(error = %e, "returning a dropped consumer's messages failed");
        }
    }
}

impl Engine {
    /// Queues whose `expires_ms` has passed since their last use with no push consumer.
    pub fn expired(&self, now: u64) -> Vec<QueueName> {
        self.queues
            .values()
            .filter(|q| {
                q.config
                    .expires_ms
                    .is_some_and(|e| now >= q.last_used_ms.saturating_add(e))
                    && !q
                        .consumers
                        .iter()
                        .any(|c| self.consumers.get(c).is_some_and(|c| c.opts.push))
            })
            .map(|q| q.name.clone())
            .collect()
    }

    pub fn queue(&self, name: &QueueName) -> Result<u32, QueueError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| QueueError::NotFound(name.to_string()))
    }

    /// After an operation's writes: evict the records it changed from their queues' hot
    /// caches, then keep there the ones it stored and did not deliver (see [`super::hot`]).
    fn keep_hot(&mut self, cx: &mut Cx<'_>) {
        let budget = cx.hot_budget;
        // Nothing is kept anywhere (the budget counts every entry): nothing to evict.
        let any_kept = budget.load(Ordering::Relaxed) > 0;
        for key in cx.take_written().filter(|_| any_kept) {
            if let Some((qid, seq)) = keys::message_parts(&key) {
                if let Some(q) = self.queues.get_mut(&qid) {
                    q.hot.evict(seq);
                }
            }
        }
        for (key, encoded_len, fresh) in cx.take_unsent() {
            let Some((qid, seq)) = keys::message_parts(&key) else {
                continue;
            };
            if let Some(q) = self.queues.get_mut(&qid) {
                if !q.consumers.is_empty() && seq > q.cursor {
                    q.hot.put(seq, encoded_len, fresh, budget);
                }
            }
        }
    }

    /// Serve queue `qid`'s consumers round robin, one message per consumer with credit per turn.
    pub fn dispatch(&mut self, qid: u32, cx: &mut Cx<'_>) -> Result<(), QueueError> {
        let Engine {
            queues, consumers, ..
        } = self;
        let Some(q) = queues.get_mut(&qid) else {
            return Ok(());
        };
        let n = q.consumers.len();
        loop {
            let chosen = (0..n)
                .map(|i| (q.rr + i) % n)
                .find(|&idx| consumers[&q.consumers[idx]].has_credit());
            let Some(idx) = chosen else { break };
            let Some(ready) = q.next_ready(cx)? else {
                break;
            };
            q.rr = (idx + 1) % n;
            let cid = q.consumers[idx];
            let c = consumers
                .get_mut(&cid)
                .expect("consumer listed by its queue");
            let d = deliver(q, c, cid, ready, cx)?;
            cx.sends.push((c.tx.clone(), d));
        }
        Ok(())
    }

    fn get(&mut self, cid: ConsumerId, cx: &mut Cx<'_>) -> Result<Option<Delivery>, QueueError> {
        let c = self.consumers.get_mut(&cid).ok_or(QueueError::Deleted)?;
        let q = self.queues.get_mut(&c.queue).ok_or(QueueError::Deleted)?;
        q.last_used_ms = cx.now;
        match q.next_ready(cx)? {
            Some(r) => deliver(q, c, cid, r, cx).map(Some),
            None => Ok(None),
        }
    }

    fn settle(
        &mut self,
        cid: ConsumerId,
        tag: u64,
        multiple: bool,
        how: Settle,
        cx: &mut Cx<'_>,
    ) -> Result<usize, QueueError> {
        let c = self.consumers.get_mut(&cid).ok_or(QueueError::Deleted)?;
        let items: Vec<(u64, u32)> = if multiple {
            let tags: Vec<u64> = c.unacked.range(..=tag).map(|(t, _)| *t).collect();
            tags.iter().filter_map(|t| c.unacked.remove(t)).collect()
        } else {
            c.unacked.remove(&tag).into_iter().collect()
        };
        if items.is_empty() {
            return Err(QueueError::UnknownDeliveryTag(tag));
        }
        let q = self.queues.get_mut(&c.queue).ok_or(QueueError::Deleted)?;
        for &(seq, count) in &items {
            q.inflight.remove(&seq);
            let key = keys::message(q.id, seq);
            let limit = q.config.max_deliveries.is_some_and(|m| count >= m);
            match how {
                Settle::Ack => {
                    cx.remove(&key);
                    q.len = q.len.saturating_sub(1);
                }
                Settle::Reject | Settle::Requeue if how == Settle::Reject || limit => {
                    let reason = if how == Settle::Reject {
                        DeadLetterReason::Rejected
                    } else {
                        DeadLetterReason::DeliveryLimit
                    };
                    if let Some(v) = cx.store.data.get(key)? {
                        let (h, _) = envelope::decode_header(&v)?;
                        q.dead_letter(seq, &v, h, count, reason, cx)?;
                    }
                }
                Settle::Reject | Settle::Requeue => {
                    let delay = q.config.retry.delay_ms(count, rand::random::<f64>());
                    q.requeue(seq, count, delay, cx)?;
                }
            }
        }
        cx.touched.insert(q.id);
        Ok(items.len())
    }

    /// Remove a consumer and return its unsettled messages, ready at once at their position.
    fn cancel(&mut self, cid: ConsumerId, cx: &mut Cx<'_>) -> Result<(), QueueError> {
        let Some(c) = self.consumers.remove(&cid) else {
            return Ok(());
        };
        let Some(q) = self.queues.get_mut(&c.queue) else {
            return Ok(());
        };
        q.consumers.retain(|&x| x != cid);
        q.rr = 0;
        if q.consumers.is_empty() {
            q.hot.clear();
        }
        if c.opts.push {
            q.last_used_ms = cx.now;
        }
        for (seq, count) in c.unacked.into_values() {
            q.inflight.remove(&seq);
            q.requeue(seq, count, 0, cx)?;
        }
        Ok(())
    }

    pub fn add_consumer(
        &mut self,
        qid: u32,
        opts: ConsumerOptions,
        tx: mpsc::UnboundedSender<Delivery>,
        cx: &mut Cx<'_>,
    ) -> ConsumerId {
        self.next_consumer += 1;
        let cid = self.next_consumer;
        self.consumers.insert(
            cid,
            ConsumerState {
                queue: qid,
                opts,
                tx,
                next_tag: 1,
                unacked: BTreeMap::new(),
            },
        );
        if let Some(q) = self.queues.get_mut(&qid) {
            q.consumers.push(cid);
            q.last_used_ms = cx.now;
        }
        cx.touched.insert(qid);
        cid
    }

    /// Place staged transfers (dead letters, redrives) into their target queues, in the same
    /// batch as their removal from the source.
    pub fn settle_deaths(&mut self, cx: &mut Cx<'_>) -> Result<(), QueueError> {
        for t in std::mem::take(&mut cx.deaths) {
            let target = QueueName::new(t.target.clone())
                .ok()
                .and_then(|n| self.by_name.get(&n).copied())
                .and_then(|id| self.queues.get_mut(&id));
            let Some(q) = target else {
                tracing::warn!(target = %t.target, "dead-letter target queue does not exist; message discarded");
                continue;
            };
            let header = EnvelopeHeader {
                enqueued_ms: cx.now,
                not_before_ms: None,
                expires_ms: q.expiry(cx.now, t.message.properties.expiration_ms),
                deliveries: 0,
                exchange: t.exchange,
                routing_keys: t.routing_keys,
            };
            let seq = q.next_seq;
            q.next_seq += 1;
            let value = envelope::encode(&header, &t.message.encode()?)?;
            cx.insert(&keys::message(q.id, seq), value);
            q.len += 1;
            q.totals.published += 1;
            cx.touched.insert(q.id);
        }
        Ok(())
    }
}

/// Hand `ready` to consumer `c`: assign a tag, index it as in flight, move the high-water mark.
fn deliver(
    q: &mut QueueState,
    c: &mut ConsumerState,
    cid: ConsumerId,
    ready: Ready,
    cx: &mut Cx<'_>,
) -> Result<Delivery, QueueError> {
    let (header, message) = ready.record.decode()?;
    let tag = c.next_tag;
    c.next_tag += 1;
    let count = ready.deliveries + 1;
    c.unacked.insert(tag, (ready.seq, count));
    q.inflight.insert(ready.seq, (cid, tag));
    q.totals.delivered += 1;
    if ready.seq > q.hwm {
        q.hwm = ready.seq;
        cx.hwm.insert(q.id, ready.seq);
    }
    Ok(Delivery {
        queue: q.name.clone(),
        tag,
        seq: ready.seq,
        redelivered: ready.deliveries > 0 || ready.seq <= q.restored_hwm,
        delivery_count: count,
        exchange: header.exchange,
        routing_keys: header.routing_keys,
        message,
    })
}
