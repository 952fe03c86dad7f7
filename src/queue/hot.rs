//! Decoded copies of a queue's newest, never-delivered messages: when a consumer's credit frees
//! up (an ack), dispatch hands it the next message without reading back and decoding the record
//! the publish encoded a moment before. Under a steady publish → consume → ack stream with the
//! consumer at its prefetch limit, that is every delivery.
//!
//! Invariants (with [`QueueState`](super::state::QueueState)'s):
//! - an entry for seq `s` equals the record stored under `m ++ qid ++ s`: entries come only from
//!   the operation that stored the record, and any later write of that key evicts them
//!   ([`Cx::take_written`](super::cx::Cx::take_written));
//! - entries are only for seqs beyond the queue's cursor (never delivered); [`take`](Hot::take)
//!   prunes those the cursor has passed;
//! - all queues together hold at most [`HOT_BYTES`]: a cache miss costs a read, never memory.
//!   A queue left without consumers drops its entries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::cx::Fresh;

/// Budget for decoded messages kept by all queues of one engine.
pub const HOT_BYTES: usize = 8 << 20;

/// Bytes charged per entry beyond its size decoded: the box, the map node, the allocators' rounding.
const ENTRY_OVERHEAD: usize = 256;

/// Bytes held by all [`Hot`] caches of one engine.
pub(crate) type HotBudget = Arc<AtomicUsize>;

#[derive(Debug, Default)]
pub(crate) struct Hot {
    /// seq -> (bytes charged to the budget, the message).
    entries: BTreeMap<u64, (usize, Box<Fresh>)>,
    /// The engine's budget, taken on the first insert so a dropped queue can give its bytes back.
    budget: Option<HotBudget>,
}

impl Hot {
    /// Keep `fresh` (the record stored as `seq`, `encoded_len` bytes) if the budget allows.
    /// Charged at twice the encoded length: the body costs the same decoded, but headers and
    /// strings take more room in `String`s and maps than in MessagePack, so a message of a
    /// thousand tiny headers is not kept as if it were its body alone.
    pub fn put(&mut self, seq: u64, encoded_len: usize, fresh: Box<Fresh>, budget: &HotBudget) {
        let size = 2 * encoded_len + ENTRY_OVERHEAD;
        let taken = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            (used + size <= HOT_BYTES).then_some(used + size)
        });
        if taken.is_err() {
            return;
        }
        self.budget.get_or_insert_with(|| budget.clone());
        if let Some((old, _)) = self.entries.insert(seq, (size, fresh)) {
            self.release(old);
        }
    }

    /// The entry for `seq`, dropping any the cursor (now at `seq`) has passed.
    pub fn take(&mut self, seq: u64) -> Option<Box<Fresh>> {
        let mut found = None;
        while let Some(entry) = self.entries.first_entry() {
            if *entry.key() > seq {
                break;
            }
            let key = *entry.key();
            let (size, fresh) = entry.remove();
            self.release(size);
            if key == seq {
                found = Some(fresh);
            }
        }
        found
    }

    /// Forget `seq` (its record was rewritten or removed).
    pub fn evict(&mut self, seq: u64) {
        if let Some((size, _)) = self.entries.remove(&seq) {
            self.release(size);
        }
    }

    pub fn clear(&mut self) {
        let bytes = std::mem::take(&mut self.entries)
            .values()
            .map(|(size, _)| size)
            .sum();
        self.release(bytes);
    }

    fn release(&self, size: usize) {
        if let Some(b) = self.budget.as_ref().filter(|_| size > 0) {
            b.fetch_sub(size, Ordering::Relaxed);
        }
    }
}

impl Drop for Hot {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::queue::envelope::EnvelopeHeader;

    fn fresh(body_len: usize) -> Box<Fresh> {
        Box::new(Fresh {
            header: EnvelopeHeader::default(),
            message: Message::new(vec![7u8; body_len]),
        })
    }

    #[test]
    fn the_budget_bounds_all_caches_and_comes_back() {
        let budget = HotBudget::default();
        let big = HOT_BYTES / 4;
        let (mut a, mut b) = (Hot::default(), Hot::default());
        let len = (big - ENTRY_OVERHEAD) / 2;
        for seq in 1..=3 {
            a.put(seq, len, fresh(len), &budget);
        }
        b.put(1, len, fresh(len), &budget);
        b.put(2, len, fresh(len), &budget);
        assert_eq!(
            budget.load(Ordering::Relaxed),
            HOT_BYTES,
            "the fifth did not fit"
        );
        assert!(b.take(2).is_none(), "b kept only seq 1");
        assert_eq!(
            budget.load(Ordering::Relaxed),
            3 * big,
            "taking prunes passed seqs"
        );
        // Taking seq 2 drops seq 1 (the cursor passed it) and returns seq 2.
        assert!(a.take(2).is_some());
        assert_eq!(budget.load(Ordering::Relaxed), big);
        a.evict(3);
        assert_eq!(
            budget.load(Ordering::Relaxed),
            0,
            "evicting gives the bytes back"
        );
        a.put(9, 10, fresh(10), &budget);
        drop(a);
        assert_eq!(
            budget.load(Ordering::Relaxed),
            0,
            "a dropped queue gives its bytes back"
        );
    }
}
