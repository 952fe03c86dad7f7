//! The per-operation context: one sled batch and the side effects to run after it commits.

use std::collections::BTreeSet;

use tokio::sync::mpsc::UnboundedSender;

use super::{Delivery, QueueError};
use crate::message::Message;
use crate::store::Store;

/// A message on its way to a dead-letter queue, staged until the source queue's borrow ends.
#[derive(Debug)]
pub(crate) struct PendingDeath {
    pub target: String,
    pub message: Message,
    pub exchange: String,
    pub routing_keys: Vec<String>,
}

/// Everything one engine operation changes. Why: all writes of an operation (a publish
/// fan-out, an ack of many tags, a dead-letter move) go into one `apply_batch`, so they are
/// atomic; deliveries are sent only after that batch is applied.
pub(crate) struct Cx<'a> {
    pub store: &'a Store,
    pub now: u64,
    pub batch: sled::Batch,
    pub writes: usize,
    pub deaths: Vec<PendingDeath>,
    pub sends: Vec<(UnboundedSender<Delivery>, Delivery)>,
    /// Queues whose consumers may now have work.
    pub touched: BTreeSet<u32>,
}

impl<'a> Cx<'a> {
    pub fn new(store: &'a Store, now: u64) -> Cx<'a> {
        Cx {
            store,
            now,
            batch: sled::Batch::default(),
            writes: 0,
            deaths: Vec::new(),
            sends: Vec::new(),
            touched: BTreeSet::new(),
        }
    }

    pub fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.insert(key, value);
        self.writes += 1;
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.batch.remove(key);
        self.writes += 1;
    }

    /// Apply the staged writes (if any) as one atomic batch.
    pub fn apply(&mut self) -> Result<bool, QueueError> {
        if self.writes == 0 {
            return Ok(false);
        }
        let batch = std::mem::take(&mut self.batch);
        self.writes = 0;
        self.store.apply(batch)?;
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
