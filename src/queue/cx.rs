//! The per-operation context: one atomic group of writes and the side effects to run after it.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::mpsc::UnboundedSender;

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

/// Everything one engine operation changes. Writes that must land together (a publish
/// fan-out, a dead-letter move) are applied as one atomic batch; deliveries are sent only
/// after the writes are applied.
pub(crate) struct Cx<'a> {
    pub store: &'a Store,
    pub now: u64,
    /// Staged writes in order: key, `Some(value)` to insert, `None` to remove.
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub deaths: Vec<PendingDeath>,
    pub sends: Vec<(UnboundedSender<Delivery>, Delivery)>,
    /// Queues whose consumers may now have work.
    pub touched: BTreeSet<u32>,
    /// New first-delivery high-water marks, written once per apply rather than per delivery.
    pub hwm: BTreeMap<u32, u64>,
}

impl<'a> Cx<'a> {
    pub fn new(store: &'a Store, now: u64) -> Cx<'a> {
        Cx {
            store,
            now,
            ops: Vec::new(),
            deaths: Vec::new(),
            sends: Vec::new(),
            touched: BTreeSet::new(),
            hwm: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.ops.push((key.to_vec(), Some(value)));
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.ops.push((key.to_vec(), None));
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
