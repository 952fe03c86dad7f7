//! Channel-wide delivery tags and where each came from.
//!
//! The queue engine numbers deliveries per consumer; AMQP numbers them per channel. [`Tags`]
//! maps each channel tag to (source, consumer tag). Consumer tags grow with channel tags for
//! any one consumer, so "all of this consumer's tags up to N" is exactly the part of a
//! channel-wide `multiple` that belongs to it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::queue::QueueName;

/// Where a channel delivery tag came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// A consumer, by its tag. Shared, not copied: every delivery records its source.
    Consumer(Arc<str>),
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

    /// Removes and returns the unacknowledged tags up to `upto`, in order.
    pub(crate) fn take_upto(&mut self, upto: u64) -> BTreeMap<u64, (Source, u64)> {
        match upto.checked_add(1) {
            Some(after) => {
                let rest = self.unacked.split_off(&after);
                std::mem::replace(&mut self.unacked, rest)
            }
            None => std::mem::take(&mut self.unacked),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(name: &str) -> Source {
        Source::Consumer(name.into())
    }

    #[test]
    fn take_upto_takes_exactly_the_tags_at_or_below_and_keeps_the_rest() {
        let mut tags = Tags::default();
        for t in 1..=6 {
            tags.assign(consumer(if t % 2 == 0 { "a" } else { "b" }), Some(t * 10));
        }
        let taken: Vec<u64> = tags.take_upto(4).into_keys().collect();
        assert_eq!(taken, [1, 2, 3, 4]);
        assert_eq!(tags.unacked.keys().copied().collect::<Vec<_>>(), [5, 6]);
        assert!(
            tags.take_upto(4).is_empty(),
            "nothing at or below 4 is left"
        );
        assert_eq!(tags.unacked[&6], (consumer("a"), 60));
        let rest: Vec<u64> = tags.take_upto(u64::MAX).into_keys().collect();
        assert_eq!(rest, [5, 6]);
        assert!(tags.unacked.is_empty());
    }
}
