//! One queue's in-memory state: small indexes over messages that live on disk.
//!
//! Why lazy: the backlog is read from sled by a cursor, one message at a time, when a consumer
//! has credit. Memory per queue is O(in-flight + requeued + delayed), never O(backlog), so a
//! million-message backlog costs the process only sled's (bounded) page cache.
//!
//! Invariants, for a queue with id `id`:
//! - every stored message `m ++ id ++ seq` is in exactly one place: on disk beyond `cursor`
//!   (never looked at since open), in `ready` (seen, ready now), in `delayed` (seen, waiting for
//!   its time) or in `inflight` (delivered, unsettled);
//! - `ready` and `delayed` hold only seqs `<= cursor`, so taking `ready`'s first entry before
//!   scanning past `cursor` delivers in seq order: requeued messages before never-delivered ones;
//! - `len` counts all stored messages of the queue; `hwm` is the highest seq ever delivered.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::cx::{Cx, Fresh, PendingDeath};
use super::death::{self, DeadLetterReason, Death};
use super::envelope::{self, EnvelopeHeader};
use super::hot::Hot;
use super::{QueueConfig, QueueError, QueueName};
use crate::store::keys;

pub(crate) type ConsumerId = u64;

/// A message that may be delivered now.
#[derive(Debug)]
pub(crate) struct Ready {
    pub seq: u64,
    /// Deliveries before this one.
    pub deliveries: u32,
    pub record: Record,
}

/// A message record as dispatch found it.
#[derive(Debug)]
pub(crate) enum Record {
    /// Read from the store: an encoded envelope.
    Stored(Vec<u8>),
    /// Still decoded: staged by the running operation ([`Cx::take_fresh`]) or kept by the
    /// queue's hot cache.
    Fresh(Box<Fresh>),
}

impl Record {
    pub fn decode(self) -> Result<(EnvelopeHeader, crate::message::Message), QueueError> {
        match self {
            Record::Stored(value) => envelope::decode(&value),
            Record::Fresh(f) => {
                let Fresh { header, message } = *f;
                Ok((header, message))
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct QueueState {
    pub id: u32,
    pub name: QueueName,
    pub config: QueueConfig,
    pub next_seq: u64,
    pub cursor: u64,
    pub hwm: u64,
    /// `hwm` as found at open: seqs up to it may have been delivered before the restart.
    pub restored_hwm: u64,
    /// seq -> deliveries so far.
    pub ready: BTreeMap<u64, u32>,
    /// (due ms, seq) -> deliveries so far.
    pub delayed: BTreeMap<(u64, u64), u32>,
    /// seq -> (consumer, tag).
    pub inflight: HashMap<u64, (ConsumerId, u64)>,
    pub len: u64,
    /// Consumers in round-robin order.
    pub consumers: Vec<ConsumerId>,
    pub rr: usize,
    pub dedup: HashMap<String, u64>,
    pub dedup_order: VecDeque<(u64, String)>,
    /// Last declaration, push-consumer change or `get` (ms); `config.expires_ms` counts from
    /// here. In memory only: after a restart it is the open time.
    pub last_used_ms: u64,
    /// Messages in, deliveries out, dead-letterings out since the engine opened (for rates).
    pub totals: Totals,
    /// Decoded copies of never-delivered messages (see [`super::hot`]).
    pub hot: Hot,
}

/// Per-queue event counts since open. In memory only: a restart starts them at zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub published: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
}

impl QueueState {
    pub fn new(id: u32, name: QueueName, config: QueueConfig) -> QueueState {
        QueueState {
            id,
            name,
            config,
            next_seq: 1,
            cursor: 0,
            hwm: 0,
            restored_hwm: 0,
            ready: BTreeMap::new(),
            delayed: BTreeMap::new(),
            inflight: HashMap::new(),
            len: 0,
            consumers: Vec::new(),
            rr: 0,
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            last_used_ms: 0,
            totals: Totals::default(),
            hot: Hot::default(),
        }
    }

    /// Messages not in flight (ready, delayed or not yet scanned): what max-length limits.
    pub fn waiting(&self) -> u64 {
        self.len - self.inflight.len() as u64
    }

    /// Absolute expiry for a message published now with per-message TTL `msg_ttl`.
    pub fn expiry(&self, now: u64, msg_ttl: Option<u64>) -> Option<u64> {
        match (msg_ttl, self.config.message_ttl_ms) {
            (Some(a), Some(b)) => Some(now.saturating_add(a.min(b))),
            (Some(a), None) | (None, Some(a)) => Some(now.saturating_add(a)),
            (None, None) => None,
        }
    }

    fn promote_due(&mut self, now: u64) {
        while let Some((&(due, seq), &d)) = self.delayed.first_key_value() {
            if due > now {
                break;
            }
            self.delayed.remove(&(due, seq));
            self.ready.insert(seq, d);
        }
    }

    /// Take the next message that may be delivered now. Expired messages and messages over the
    /// delivery limit met on the way are dead-lettered; not-yet-due ones move to `delayed`.
    pub fn next_ready(&mut self, cx: &mut Cx<'_>) -> Result<Option<Ready>, QueueError> {
        self.promote_due(cx.now);
        loop {
            let (seq, known) = match self.ready.pop_first() {
                Some((seq, d)) => (seq, Some(d)),
                None => {
                    let Some(seq) = cx
                        .store
                        .data
                        .first_seq(self.id, self.cursor.saturating_add(1))
                    else {
                        return Ok(None);
                    };
                    self.cursor = seq;
                    // Never delivered: this operation or a recent one may hold it decoded.
                    let key = keys::message(self.id, seq);
                    if let Some(f) = cx.take_fresh(&key).or_else(|| self.hot.take(seq)) {
                        let deliveries = f.header.deliveries;
                        if self.deliverable(&f.header, deliveries, cx.now) {
                            let record = Record::Fresh(f);
                            return Ok(Some(Ready {
                                seq,
                                deliveries,
                                record,
                            }));
                        }
                        // Expired, delayed or over its limit: the path below deals with it.
                    }
                    (seq, None)
                }
            };
            let Some(value) = cx.store.data.get(keys::message(self.id, seq))? else {
                tracing::error!(queue = %self.name, seq, "indexed message missing on disk");
                self.len = self.len.saturating_sub(1);
                continue;
            };
            let (h, _) = envelope::decode_header(&value)?;
            let deliveries = known.unwrap_or(h.deliveries);
            if h.expires_ms.is_some_and(|e| e <= cx.now) {
                self.dead_letter(seq, &value, h, deliveries, DeadLetterReason::Expired, cx)?;
                continue;
            }
            if let Some(t) = h.not_before_ms.filter(|&t| t > cx.now) {
                self.delayed.insert((t, seq), deliveries);
                continue;
            }
            if self.config.max_deliveries.is_some_and(|m| deliveries >= m) {
                let r = DeadLetterReason::DeliveryLimit;
                self.dead_letter(seq, &value, h, deliveries, r, cx)?;
                continue;
            }
            return Ok(Some(Ready {
                seq,
                deliveries,
                record: Record::Stored(value),
            }));
        }
    }

    /// Whether a message with this header may go to a consumer now; [`next_ready`] gives the
    /// others their due (dead-letter, delay).
    fn deliverable(&self, h: &EnvelopeHeader, deliveries: u32, now: u64) -> bool {
        h.expires_ms.is_none_or(|e| e > now)
            && h.not_before_ms.is_none_or(|t| t <= now)
            && self.config.max_deliveries.is_none_or(|m| deliveries < m)
    }

    /// Dead-letter the head (oldest waiting message) for overflow `drop-head`. Returns false
    /// when nothing waits (everything is in flight).
    pub fn drop_head(&mut self, cx: &mut Cx<'_>) -> Result<bool, QueueError> {
        let head = if let Some((seq, d)) = self.ready.pop_first() {
            Some((seq, Some(d)))
        } else {
            let start = keys::message(self.id, self.cursor.saturating_add(1));
            let end = keys::message(self.id, u64::MAX);
            match cx.store.data.first_in(&start, &end)? {
                Some((k, _)) => {
                    let seq = keys::message_seq(&k)
                        .ok_or_else(|| QueueError::CorruptRecord("bad message key".into()))?;
                    self.cursor = seq;
                    Some((seq, None))
                }
                None => self.delayed.pop_first().map(|((_, s), d)| (s, Some(d))),
            }
        };
        let Some((seq, known)) = head else {
            return Ok(false);
        };
        let Some(value) = cx.store.data.get(keys::message(self.id, seq))? else {
            return Ok(false);
        };
        let (h, _) = envelope::decode_header(&value)?;
        let d = known.unwrap_or(h.deliveries);
        self.dead_letter(seq, &value, h, d, DeadLetterReason::MaxLen, cx)?;
        Ok(true)
    }

    /// Remove message `seq` (already out of every index) and stage it for the dead-letter
    /// target, with an `x-death` record. Without a target the message is discarded.
    pub fn dead_letter(
        &mut self,
        seq: u64,
        value: &[u8],
        h: EnvelopeHeader,
        deliveries: u32,
        reason: DeadLetterReason,
        cx: &mut Cx<'_>,
    ) -> Result<(), QueueError> {
        cx.remove(&keys::message(self.id, seq));
        self.len = self.len.saturating_sub(1);
        self.totals.dead_lettered += 1;
        tracing::debug!(queue = %self.name, seq, reason = reason.code(), "dead-lettering");
        let Some(target) = self.config.dead_letter.clone() else {
            return Ok(());
        };
        let (_, mut message) = envelope::decode(value)?;
        death::record(
            &mut message,
            &Death {
                reason,
                queue: self.name.as_str(),
                exchange: &h.exchange,
                routing_keys: &h.routing_keys,
                time_ms: cx.now,
                deliveries,
            },
        );
        let exchange = self
            .config
            .dead_letter_exchange
            .clone()
            .unwrap_or(h.exchange);
        let routing_keys = match &self.config.dead_letter_routing_key {
            Some(key) => vec![key.clone()],
            None => h.routing_keys,
        };
        cx.deaths.push(PendingDeath {
            target: target.as_str().to_owned(),
            message,
            exchange,
            routing_keys,
        });
        Ok(())
    }

    /// Put a returned (nacked or abandoned) message back, after `deliveries` deliveries, ready
    /// after `delay_ms`. The count and the time are persisted so a restart keeps them.
    pub fn requeue(
        &mut self,
        seq: u64,
        deliveries: u32,
        delay_ms: u64,
        cx: &mut Cx<'_>,
    ) -> Result<(), QueueError> {
        let key = keys::message(self.id, seq);
        let Some(value) = cx.store.data.get(key)? else {
            self.len = self.len.saturating_sub(1);
            return Ok(());
        };
        let (mut h, msg) = envelope::decode_header(&value)?;
        h.deliveries = deliveries;
        h.not_before_ms = (delay_ms > 0).then(|| cx.now.saturating_add(delay_ms));
        cx.insert(&key, envelope::encode(&h, msg)?);
        match h.not_before_ms {
            Some(t) => {
                self.delayed.insert((t, seq), deliveries);
            }
            None => {
                self.ready.insert(seq, deliveries);
            }
        }
        cx.touched.insert(self.id);
        Ok(())
    }

    /// Forget expired dedup entries.
    pub fn prune_dedup(&mut self, cx: &mut Cx<'_>) {
        while let Some((exp, _)) = self.dedup_order.front() {
            if *exp > cx.now {
                break;
            }
            let (exp, id) = self.dedup_order.pop_front().expect("front exists");
            if self.dedup.get(&id) == Some(&exp) {
                self.dedup.remove(&id);
                cx.remove(&keys::dedup(self.id, &id));
            }
        }
    }
}
