//! Management operations on [`Queues`]: browsing and redriving dead letters.

use super::cx::PendingDeath;
use super::{death, envelope, QueueError, QueueName, Queues};
use crate::message::Message;
use crate::store::keys;

impl Queues {
    /// Up to `limit` stored messages of a queue in queue order, without delivering them
    /// (for management and tests). Includes messages in flight.
    pub fn browse(&self, name: &QueueName, limit: usize) -> Result<Vec<Message>, QueueError> {
        let id = self.inner.engine.lock().queue(name)?;
        let mut out = Vec::new();
        for item in self
            .inner
            .store
            .data
            .scan_prefix(keys::queue_prefix(keys::MSG, id))
            .take(limit)
        {
            let (_, v) = item?;
            out.push(envelope::decode(&v)?.1);
        }
        Ok(out)
    }

    /// Write everything to disk now (fsync), e.g. at shutdown, whatever the durability mode.
    pub fn flush(&self) -> Result<(), QueueError> {
        Ok(self.inner.store.flush_now()?)
    }

    /// Bytes the store occupies on disk (for metrics).
    pub fn size_on_disk(&self) -> Result<u64, QueueError> {
        Ok(self.inner.store.size_on_disk()?)
    }

    /// When the oldest stored message of `name` was enqueued (ms since the Unix epoch), or
    /// `None` when the queue is empty. Requeued messages keep their position, so the first key
    /// is the oldest message. Reads one record.
    pub fn oldest_enqueued_ms(&self, name: &QueueName) -> Result<Option<u64>, QueueError> {
        let id = self.inner.engine.lock().queue(name)?;
        let first = self
            .inner
            .store
            .data
            .scan_prefix(keys::queue_prefix(keys::MSG, id))
            .next();
        match first {
            Some(item) => Ok(Some(envelope::decode_header(&item?.1)?.0.enqueued_ms)),
            None => Ok(None),
        }
    }

    /// Move dead-lettered messages from `dead_letter_queue` back to the queue each last died
    /// in (its `x-last-death-queue` header), oldest first, at most `limit` (all when `None`).
    /// Messages in flight, or whose source queue no longer exists, stay. Returns how many moved.
    pub fn redrive(
        &self,
        dead_letter_queue: &QueueName,
        limit: Option<usize>,
    ) -> Result<usize, QueueError> {
        let (n, _) = self.inner.op(None, |eng, cx| {
            let id = eng.queue(dead_letter_queue)?;
            let mut moves = Vec::new();
            for item in cx.store.data.scan_prefix(keys::queue_prefix(keys::MSG, id)) {
                if limit.is_some_and(|l| moves.len() >= l) {
                    break;
                }
                let (k, v) = item?;
                let seq = keys::message_seq(&k)
                    .ok_or_else(|| QueueError::CorruptRecord("bad message key".into()))?;
                if eng.queues[&id].inflight.contains_key(&seq) {
                    continue;
                }
                let (h, message) = envelope::decode(&v)?;
                let source = death::last_source_queue(&message).map(str::to_owned);
                let Some(source) = source.filter(|s| eng.by_name.contains_key(s.as_str())) else {
                    continue;
                };
                moves.push((seq, source, h, message));
            }
            let q = eng.queues.get_mut(&id).expect("resolved queue");
            let n = moves.len();
            for (seq, target, h, message) in moves {
                q.ready.remove(&seq);
                q.delayed.retain(|&(_, s), _| s != seq);
                cx.remove(&keys::message(id, seq));
                q.len = q.len.saturating_sub(1);
                cx.deaths.push(PendingDeath {
                    target,
                    message,
                    exchange: h.exchange,
                    routing_keys: h.routing_keys,
                });
            }
            Ok(n)
        })?;
        Ok(n)
    }
}
