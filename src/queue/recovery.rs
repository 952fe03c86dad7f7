//! Rebuilding the engine from the store at open.
//!
//! What is known after a restart, and why it is enough:
//! - Queue declarations live in the `queues` tree (flushed when declared).
//! - A queue's messages are its `m` keys; `len` is counted by one key scan at open.
//! - The first-delivery high-water mark `hwm` is written in the same batch as each delivery
//!   and flushed with the next group commit or within the relaxed interval. Every message with
//!   seq <= hwm that is still stored was delivered and not acked (or was a scheduled message
//!   passed over by the cursor): it is ready again, **marked redelivered**. Messages above hwm
//!   were never delivered (except deliveries in the last unflushed moments before a crash,
//!   which come back with `redelivered = false`: the one edge case of the flag).
//! - Delivery counts are persisted whenever a message returns to the queue (nack with requeue,
//!   consumer gone). A delivery in flight at a crash is not counted, so `max_deliveries` may
//!   allow one extra delivery per crash.
//! - Retry delays and scheduled times are persisted in the envelope, so they survive restarts.

use serde::{Deserialize, Serialize};

use super::envelope;
use super::state::QueueState;
use super::{QueueConfig, QueueError, QueueName};
use crate::store::{keys, Store, WriteOp};

/// A queue's declaration as stored in the `queues` tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct QueueRecord {
    pub id: u32,
    pub config: QueueConfig,
}

impl QueueRecord {
    pub fn encode(&self) -> Result<Vec<u8>, QueueError> {
        let mut out = vec![1u8];
        out.extend(rmp_serde::to_vec_named(self).map_err(crate::message::CodecError::from)?);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<QueueRecord, QueueError> {
        match bytes.split_first() {
            Some((1, rest)) => rmp_serde::from_slice(rest)
                .map_err(|e| QueueError::CorruptRecord(format!("queue record: {e}"))),
            _ => Err(QueueError::CorruptRecord(
                "unknown queue record version".into(),
            )),
        }
    }
}

/// Load every declared queue's state.
pub(crate) fn load(store: &Store, now: u64) -> Result<Vec<QueueState>, QueueError> {
    let mut out = Vec::new();
    let mut cleanup: Vec<WriteOp> = Vec::new();
    for item in store.queues.iter() {
        let (k, v) = item?;
        let name = QueueName::new(String::from_utf8_lossy(&k).into_owned())?;
        let rec = QueueRecord::decode(&v)?;
        let mut q = QueueState::new(rec.id, name, rec.config);
        let hwm = store
            .data
            .get(keys::hwm(q.id))?
            .and_then(|v| keys::be_u64(&v))
            .unwrap_or(0);
        q.hwm = hwm;
        q.restored_hwm = hwm;
        q.cursor = hwm;
        let mut last = 0;
        for k in store.data.scan_keys(&keys::queue_prefix(keys::MSG, q.id)) {
            let seq = keys::message_seq(&k)
                .ok_or_else(|| QueueError::CorruptRecord("bad message key".into()))?;
            q.len += 1;
            last = seq;
            // Only possibly-delivered messages are read: the backlog beyond stays on disk.
            if seq <= hwm {
                let Some(v) = store.data.get(&k)? else {
                    continue;
                };
                let (h, _) = envelope::decode_header(&v)?;
                match h.not_before_ms.filter(|&t| t > now) {
                    Some(t) => q.delayed.insert((t, seq), h.deliveries),
                    None => q.ready.insert(seq, h.deliveries),
                };
            }
        }
        q.next_seq = last.max(hwm) + 1;
        for item in store
            .data
            .scan_prefix(keys::queue_prefix(keys::DEDUP, q.id))
        {
            let (k, v) = item?;
            let exp = keys::be_u64(&v).unwrap_or(0);
            let id = String::from_utf8_lossy(&k[5..]).into_owned();
            if exp <= now {
                cleanup.push((k, None));
            } else {
                q.dedup.insert(id.clone(), exp);
                q.dedup_order.push_back((exp, id));
            }
        }
        q.dedup_order.make_contiguous().sort();
        tracing::info!(queue = %q.name, messages = q.len, hwm, "queue recovered");
        out.push(q);
    }
    store.write(&cleanup)?;
    Ok(out)
}
