//! Channel-wide delivery tags and where each came from.
//!
//! The queue engine numbers deliveries per consumer; AMQP numbers them per channel. [`Tags`]
//! maps each channel tag to (source, consumer tag). Consumer tags grow with channel tags for
//! any one consumer, so "all of this consumer's tags up to N" is exactly the part of a
//! channel-wide `multiple` that belongs to it.

use std::collections::{BTreeMap, HashSet};

use crate::queue::QueueName;

/// Where a channel delivery tag came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Consumer(String),
    Get(QueueName),
}

/// Channel-wide delivery tags.
#[derive(Debug, Default)]
pub(crate) struct Tags {
    next: u64,
    pub(crate) unacked: BTreeMap<u64, (Source, u64)>,
    /// Tags of cancelled consumers: their messages went back to the queue; a late ack of one
    /// is ignored instead of being a 406 (RabbitMQ would still accept it).
    pub(crate) dead: HashSet<u64>,
}

impl Tags {
    pub(crate) fn assign(&mut self, source: Source, consumer_tag: Option<u64>) -> u64 {
        self.next += 1;
        if let Some(t) = consumer_tag {
            self.unacked.insert(self.next, (source, t));
        }
        self.next
    }

    pub(crate) fn kill(&mut self, source: &Source) {
        let dead: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, (s, _))| s == source)
            .map(|(t, _)| *t)
            .collect();
        for t in dead {
            self.unacked.remove(&t);
            self.dead.insert(t);
        }
    }
}
