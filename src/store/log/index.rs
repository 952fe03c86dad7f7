//! The log's index: key → where its value lives.
//!
//! Message keys (`m` ++ queue id ++ seq, see `store::keys`) are most of the keys and arrive in
//! seq order, so they get a dense layout: per queue, chunks of 64 consecutive seqs, each a
//! bitmap and 64 packed locations (12 bytes each). A backlog then costs ~12.5 bytes of index
//! per message instead of ~100 in a general B-tree of byte keys. Every other key (high-water
//! marks, dedup entries: few) lives in an ordinary `BTreeMap`.
//!
//! Invariant: a message key is in `messages` only, any other key in `other` only; `len` counts
//! both.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use smallvec::SmallVec;

use crate::store::keys;

/// Keys are short: stored inline, no allocation per entry.
type Key = SmallVec<[u8; 16]>;

/// Where a value lives: segment, offset in it, length. Offsets fit in 32 bits because segments
/// are sealed long before 4 GiB (the log refuses frames that would cross it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seg: u32,
    pub off: u32,
    pub len: u32,
}

const CHUNK: u64 = 64;

#[derive(Debug)]
struct Chunk {
    present: u64,
    locs: [Loc; CHUNK as usize],
}

/// One queue's message locations, by seq.
#[derive(Debug, Default)]
struct SeqMap {
    chunks: BTreeMap<u64, Box<Chunk>>,
}

impl SeqMap {
    fn get(&self, seq: u64) -> Option<Loc> {
        let c = self.chunks.get(&(seq / CHUNK))?;
        let bit = seq % CHUNK;
        (c.present & (1 << bit) != 0).then(|| c.locs[bit as usize])
    }

    fn insert(&mut self, seq: u64, loc: Loc) -> Option<Loc> {
        let c = self.chunks.entry(seq / CHUNK).or_insert_with(|| {
            Box::new(Chunk {
                present: 0,
                locs: [Loc {
                    seg: 0,
                    off: 0,
                    len: 0,
                }; CHUNK as usize],
            })
        });
        let bit = seq % CHUNK;
        let old = (c.present & (1 << bit) != 0).then(|| c.locs[bit as usize]);
        c.present |= 1 << bit;
        c.locs[bit as usize] = loc;
        old
    }

    fn remove(&mut self, seq: u64) -> Option<Loc> {
        let id = seq / CHUNK;
        let c = self.chunks.get_mut(&id)?;
        let bit = seq % CHUNK;
        if c.present & (1 << bit) == 0 {
            return None;
        }
        c.present &= !(1 << bit);
        let old = c.locs[bit as usize];
        if c.present == 0 {
            self.chunks.remove(&id);
        }
        Some(old)
    }

    /// The lowest present seq in `from..=to`.
    fn first(&self, from: u64, to: u64) -> Option<(u64, Loc)> {
        for (&id, c) in self.chunks.range(from / CHUNK..) {
            let base = id * CHUNK;
            let mask = if base >= from {
                u64::MAX
            } else {
                u64::MAX << (from - base)
            };
            let bits = c.present & mask;
            if bits != 0 {
                let bit = u64::from(bits.trailing_zeros());
                let seq = base + bit;
                return (seq <= to).then(|| (seq, c.locs[bit as usize]));
            }
        }
        None
    }
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    messages: HashMap<u32, SeqMap>,
    other: BTreeMap<Key, Loc>,
    len: usize,
}

/// The queue id of a `m` ++ qid prefix.
fn message_prefix(prefix: &[u8]) -> Option<u32> {
    (prefix.len() == 5 && prefix[0] == keys::MSG)
        .then(|| u32::from_be_bytes(prefix[1..5].try_into().expect("4 bytes")))
}

impl Index {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &[u8]) -> Option<Loc> {
        match keys::message_parts(key) {
            Some((q, seq)) => self.messages.get(&q)?.get(seq),
            None => self.other.get(key).copied(),
        }
    }

    pub fn insert(&mut self, key: &[u8], loc: Loc) -> Option<Loc> {
        let old = match keys::message_parts(key) {
            Some((q, seq)) => self.messages.entry(q).or_default().insert(seq, loc),
            None => self.other.insert(Key::from_slice(key), loc),
        };
        self.len += usize::from(old.is_none());
        old
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Loc> {
        let old = match keys::message_parts(key) {
            Some((q, seq)) => {
                let map = self.messages.get_mut(&q)?;
                let old = map.remove(seq);
                if map.chunks.is_empty() {
                    self.messages.remove(&q);
                }
                old
            }
            None => self.other.remove(key),
        };
        self.len -= usize::from(old.is_some());
        old
    }

    /// The first key in `from..=to`. A range of message keys must stay within one queue
    /// (the only kind the engine asks for).
    pub fn first_in(&self, from: &[u8], to: &[u8]) -> Option<(Vec<u8>, Loc)> {
        if let (Some((q, lo)), Some((q2, hi))) =
            (keys::message_parts(from), keys::message_parts(to))
        {
            debug_assert_eq!(q, q2, "message key ranges stay within one queue");
            let (seq, loc) = self.messages.get(&q)?.first(lo, hi)?;
            return Some((keys::message(q, seq).to_vec(), loc));
        }
        self.other
            .range::<[u8], _>((Bound::Included(from), Bound::Included(to)))
            .next()
            .map(|(k, loc)| (k.to_vec(), *loc))
    }

    /// The first message seq of queue `qid` at or after `from`.
    pub fn first_seq(&self, qid: u32, from: u64) -> Option<u64> {
        self.messages
            .get(&qid)?
            .first(from, u64::MAX)
            .map(|(seq, _)| seq)
    }

    /// The first key starting with `prefix` that sorts after `after` (or the first one). A
    /// prefix covering message keys must name one queue (`m` ++ qid).
    pub fn next_with_prefix(&self, prefix: &[u8], after: Option<&[u8]>) -> Option<(Vec<u8>, Loc)> {
        if let Some(q) = message_prefix(prefix) {
            let from = match after.and_then(keys::message_parts) {
                Some((_, seq)) => seq.checked_add(1)?,
                None => 0,
            };
            let (seq, loc) = self.messages.get(&q)?.first(from, u64::MAX)?;
            return Some((keys::message(q, seq).to_vec(), loc));
        }
        debug_assert!(
            prefix.first() != Some(&keys::MSG) || prefix.len() >= 5,
            "message key scans name one queue"
        );
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Included(prefix),
        };
        self.other
            .range::<[u8], _>((lower, Bound::Unbounded))
            .next()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, loc)| (k.to_vec(), *loc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(n: u32) -> Loc {
        Loc {
            seg: 1,
            off: n,
            len: n,
        }
    }

    #[test]
    fn message_keys_and_other_keys_behave_like_one_ordered_map() {
        let mut ix = Index::default();
        for seq in [1u64, 2, 63, 64, 65, 200, 1000] {
            assert_eq!(ix.insert(&keys::message(7, seq), loc(seq as u32)), None);
        }
        ix.insert(&keys::message(8, 5), loc(5));
        ix.insert(&keys::hwm(7), loc(99));
        assert_eq!(ix.len(), 9);
        assert_eq!(ix.get(&keys::message(7, 64)), Some(loc(64)));
        assert_eq!(ix.get(&keys::message(7, 3)), None);
        assert_eq!(ix.insert(&keys::message(7, 64), loc(640)), Some(loc(64)));
        assert_eq!(ix.len(), 9, "an overwrite adds nothing");

        let first = |from, to| {
            ix.first_in(&keys::message(7, from), &keys::message(7, to))
                .map(|(k, _)| keys::message_seq(&k).unwrap())
        };
        assert_eq!(first(0, u64::MAX), Some(1));
        assert_eq!(first(3, u64::MAX), Some(63));
        assert_eq!(first(66, u64::MAX), Some(200));
        assert_eq!(first(66, 199), None);
        assert_eq!(first(1001, u64::MAX), None);

        let prefix = keys::queue_prefix(keys::MSG, 7);
        let mut seqs = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        while let Some((k, _)) = ix.next_with_prefix(&prefix, after.as_deref()) {
            seqs.push(keys::message_seq(&k).unwrap());
            after = Some(k);
        }
        assert_eq!(seqs, [1, 2, 63, 64, 65, 200, 1000]);
        let h = ix.next_with_prefix(&keys::queue_prefix(keys::HWM, 7), None);
        assert_eq!(h.map(|(_, l)| l), Some(loc(99)));

        for seq in [1u64, 2, 63, 64, 65, 200, 1000] {
            assert!(ix.remove(&keys::message(7, seq)).is_some());
        }
        assert_eq!(ix.remove(&keys::message(7, 1)), None);
        assert!(
            !ix.messages.contains_key(&7),
            "empty queues and chunks are freed"
        );
        assert_eq!(ix.len(), 2);
    }
}
