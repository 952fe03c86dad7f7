//! The per-operation context: one atomic group of writes and the side effects to run after it.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc::UnboundedSender;

use super::engine::FastMap;
use super::envelope::EnvelopeHeader;
use super::hot::HotBudget;
use super::{Delivery, QueueError};
use crate::message::Message;
use crate::store::{keys, Store};

/// A message on its way to a dead-letter queue, staged until the source queue's borrow ends.
#[derive(Debug)]
pub(crate) struct PendingDeath {
    pub target: String,
    pub message: Message,
    pub exchange: String,
    pub routing_keys: Vec<String>,
}

/// A message this operation stored, still decoded.
#[derive(Debug)]
pub(crate) struct Fresh {
    pub header: EnvelopeHeader,
    pub message: Message,
}

/// Everything one engine operation changes. Writes that must land together (a publish
/// fan-out, a dead-letter move) are applied as one atomic batch; deliveries are sent only
/// after the writes are applied.
pub(crate) struct Cx<'a> {
    pub store: &'a Store,
    pub hot_budget: &'a HotBudget,
    pub now: u64,
    /// Staged writes in order: key, `Some(value)` to insert, `None` to remove.
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub deaths: Vec<PendingDeath>,
    pub sends: Vec<(UnboundedSender<Delivery>, Delivery)>,
    /// Queues whose consumers may now have work.
    pub touched: BTreeSet<u32>,
    /// New first-delivery high-water marks, written once per apply rather than per delivery.
    pub hwm: BTreeMap<u32, u64>,
    /// Messages staged by this operation, by message key, as the publisher handed them over
    /// (with their records' encoded length, what [`Hot`](super::hot::Hot) charges them by):
    /// dispatch in the same operation gives them to a waiting consumer without reading back
    /// and decoding what was just encoded. Invariant: an entry equals the value last staged
    /// under its key — any later write to the key drops it.
    fresh: FastMap<[u8; 13], (usize, Box<Fresh>)>,
    /// Message keys written (changed or removed) other than by [`insert_fresh`], so their
    /// queues' [`Hot`](super::hot::Hot) copies can be evicted.
    written: Vec<[u8; 13]>,
}

impl<'a> Cx<'a> {
    pub fn new(store: &'a Store, hot_budget: &'a HotBudget, now: u64) -> Cx<'a> {
        Cx {
            store,
            hot_budget,
            now,
            ops: Vec::new(),
            deaths: Vec::new(),
            sends: Vec::new(),
            touched: BTreeSet::new(),
            hwm: BTreeMap::new(),
            fresh: FastMap::default(),
            written: Vec::new(),
        }
    }

    pub fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.forget(key);
        self.ops.push((key.to_vec(), Some(value)));
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.forget(key);
        self.ops.push((key.to_vec(), None));
    }

    /// Stage a new message record (`value`, the encoding of `fresh`) under `key`, keeping the
    /// decoded message for [`take_fresh`](Cx::take_fresh).
    pub fn insert_fresh(&mut self, key: [u8; 13], value: Vec<u8>, fresh: Box<Fresh>) {
        self.fresh.insert(key, (value.len(), fresh));
        self.ops.push((key.to_vec(), Some(value)));
    }

    /// Decoded records staged by this operation and not delivered by it.
    pub fn take_unsent(&mut self) -> impl Iterator<Item = ([u8; 13], usize, Box<Fresh>)> + '_ {
        self.fresh
            .drain()
            .map(|(key, (len, fresh))| (key, len, fresh))
    }

    /// Message keys written by this operation (see `written`).
    pub fn take_written(&mut self) -> impl Iterator<Item = [u8; 13]> + '_ {
        self.written.drain(..)
    }

    /// The decoded form of the record staged under `key` by this operation, if any.
    pub fn take_fresh(&mut self, key: &[u8; 13]) -> Option<Box<Fresh>> {
        if self.fresh.is_empty() {
            return None;
        }
        self.fresh.remove(key).map(|(_, fresh)| fresh)
    }

    fn forget(&mut self, key: &[u8]) {
        if keys::message_seq(key).is_none() {
            return;
        }
        let Ok(k) = <[u8; 13]>::try_from(key) else {
            return;
        };
        if !self.fresh.is_empty() {
            self.fresh.remove(&k);
        }
        self.written.push(k);
    }

    /// Apply the staged writes (if any) as one frame of the message log: all or nothing.
    pub fn apply(&mut self) -> Result<bool, QueueError> {
        for (qid, seq) in std::mem::take(&mut self.hwm) {
            self.insert(&keys::hwm(qid), seq.to_be_bytes().to_vec());
        }
        if self.ops.is_empty() {
            return Ok(false);
        }
        let ops = std::mem::take(&mut self.ops);
        self.store.write(&ops)?;
        Ok(true)
    }

    /// Hand the deliveries to their consumers. A closed receiver is fine: the consumer's drop
    /// returns its unacked messages, these included.
    pub fn send_all(&mut self) {
        for (tx, d) in self.sends.drain(..) {
            let _ = tx.send(d);
        }
    }
}
