//! Keyspace layout.
//!
//! Why one `data` tree: sled batches are per tree and cross-tree atomicity needs slow
//! transactions. Putting every hot key in one tree lets a whole publish fan-out or a
//! dead-letter move (remove here, insert there) be one `apply_batch`, which sled applies
//! atomically (all or nothing, also across a crash).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `format` | [`FORMAT`](super::dir::FORMAT), written once on creation |
//! | `meta` | `next-queue-id` | `u32` BE, the next queue id to hand out (ids are never reused) |
//! | `queues` | queue name (UTF-8) | rmp of the queue record (id + config) |
//! | `data` | `b'm'` ++ queue id `u32` BE ++ seq `u64` BE | a message envelope |
//! | `data` | `b'h'` ++ queue id `u32` BE | `u64` BE first-delivery high-water mark |
//! | `data` | `b'd'` ++ queue id `u32` BE ++ message id bytes | `u64` BE dedup expiry (ms) |
//!
//! Big-endian integers make sled's byte order equal numeric order, so a range scan over
//! `m ++ qid` yields a queue's messages in sequence (FIFO) order.

/// Prefix of message keys.
pub const MSG: u8 = b'm';
/// Prefix of high-water-mark keys.
pub const HWM: u8 = b'h';
/// Prefix of dedup keys.
pub const DEDUP: u8 = b'd';

/// Key of message `seq` in queue `qid`.
pub fn message(qid: u32, seq: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = MSG;
    k[1..5].copy_from_slice(&qid.to_be_bytes());
    k[5..13].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Sequence number in a message key, if the key is one.
pub fn message_seq(key: &[u8]) -> Option<u64> {
    if key.len() != 13 || key[0] != MSG {
        return None;
    }
    Some(u64::from_be_bytes(key[5..13].try_into().ok()?))
}

/// Queue id and sequence number in a message key, if the key is one.
pub fn message_parts(key: &[u8]) -> Option<(u32, u64)> {
    let seq = message_seq(key)?;
    Some((u32::from_be_bytes(key[1..5].try_into().ok()?), seq))
}

/// Prefix of all keys of one kind for one queue.
pub fn queue_prefix(kind: u8, qid: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = kind;
    k[1..5].copy_from_slice(&qid.to_be_bytes());
    k
}

/// Key of a queue's first-delivery high-water mark.
pub fn hwm(qid: u32) -> [u8; 5] {
    queue_prefix(HWM, qid)
}

/// Key of a dedup entry.
pub fn dedup(qid: u32, id: &str) -> Vec<u8> {
    let mut k = queue_prefix(DEDUP, qid).to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Decode a big-endian u64 value.
pub fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_by_queue_then_seq() {
        assert!(message(1, u64::MAX) < message(2, 0));
        assert!(message(1, 255) < message(1, 256));
        assert_eq!(message_seq(&message(7, 42)), Some(42));
        assert_eq!(message_seq(b"x"), None);
    }
}
