//! Compaction: give disk back once a sealed segment holds little live data.
//!
//! A victim is a sealed segment whose live values fill at most half of it. Its live entries
//! (index still pointing into it) are appended again at the log's end, a few at a time under
//! the state lock — so an entry removed meanwhile is never resurrected — and flushed whenever
//! [`CARRY_FLUSH_BYTES`] wait (memory stays bounded), and at the end; only then is the segment
//! deleted. Removal markers in the victim are carried forward for keys that are
//! absent, unless the victim is the oldest segment (no older value can exist to resurrect).
//! Each byte is copied at most once per halving of live data, so write amplification stays ≤ 2.

use std::fs;

use super::frame::{self, Decoded, Op, WriteOp};
use super::{io, segment, Loc, MessageLog};
use crate::store::StoreError;

/// Entries copied per hold of the state lock.
const BATCH: usize = 256;

/// Carried-forward bytes that may wait in memory before compaction flushes them. Without a
/// bound, a victim's whole live half (up to half a segment, 32 MiB by default) waited for the
/// flush at the end: the largest single item of a draining broker's heap. 1 MiB cost relaxed
/// brokers ~20% of their end-to-end rate in extra fsyncs; 4 MiB did not (docs/benchmarks.md).
pub(super) const CARRY_FLUSH_BYTES: u64 = 4 << 20;

impl MessageLog {
    /// Compacts one eligible segment, if any. Returns whether it did.
    pub fn compact_once(&self) -> Result<bool, StoreError> {
        let _one = self.compacting.lock();
        let victim = {
            let st = self.state.lock();
            st.segments
                .iter()
                .find(|(&id, s)| id != st.active && s.live * 2 <= s.len)
                .map(|(&id, _)| id)
        };
        let Some(victim) = victim else {
            return Ok(false);
        };
        // The victim's last frames may still be in memory.
        self.flush()?;
        let (is_oldest, live) = {
            let st = self.state.lock();
            (
                st.segments.keys().next() == Some(&victim),
                st.segments[&victim].live,
            )
        };
        if live > 0 || !is_oldest {
            self.carry_forward(victim, is_oldest)?;
            self.flush()?;
        }
        let mut st = self.state.lock();
        let live = st.segments[&victim].live;
        if live != 0 {
            tracing::warn!(
                segment = victim,
                live,
                "segment still referenced after compaction; kept"
            );
            return Ok(false);
        }
        st.segments.remove(&victim);
        drop(st);
        fs::remove_file(segment::path(&self.dir, victim)).map_err(io(&self.dir))?;
        segment::sync_dir(&self.dir).map_err(io(&self.dir))?;
        tracing::debug!(
            segment = victim,
            "message log segment compacted and removed"
        );
        Ok(true)
    }
}

impl MessageLog {
    /// Appends the victim's live entries (and, unless it is the oldest segment, its removal
    /// markers for absent keys) at the log's end. Reads the victim one frame at a time; an
    /// entry is kept only if the index still points at it when it is appended, under the same
    /// hold of the state lock, so one removed meanwhile is never resurrected.
    fn carry_forward(&self, victim: u32, is_oldest: bool) -> Result<(), StoreError> {
        let mut frames = segment::Frames::open(&self.dir, victim).map_err(io(&self.dir))?;
        let mut batch: Vec<(WriteOp, Option<Loc>)> = Vec::new();
        while let Some((at, bytes)) = frames.next_frame().map_err(io(&self.dir))? {
            let Decoded::Frame { ops, .. } = frame::decode(bytes) else {
                break;
            };
            // A first look, so that dead values (at least half of a victim) are never copied.
            let st = self.state.lock();
            for op in ops {
                match op {
                    Op::Put {
                        key,
                        value_off,
                        value_len,
                    } => {
                        let here = Loc {
                            seg: victim,
                            len: value_len as u32,
                            off: (at as usize + value_off) as u32,
                        };
                        if st.index.get(key) == Some(here) {
                            let value = bytes[value_off..][..value_len].to_vec();
                            batch.push(((key.to_vec(), Some(value)), Some(here)));
                        }
                    }
                    Op::Del { key } => {
                        if !is_oldest && st.index.get(key).is_none() {
                            batch.push(((key.to_vec(), None), None));
                        }
                    }
                }
            }
            drop(st);
            if batch.len() >= BATCH {
                self.append_still_live(&mut batch)?;
                if self.unflushed_bytes() >= CARRY_FLUSH_BYTES {
                    self.flush()?;
                }
            }
        }
        self.append_still_live(&mut batch)
    }

    /// Appends the entries of `batch` that are still live, and empties it.
    fn append_still_live(&self, batch: &mut Vec<(WriteOp, Option<Loc>)>) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        let ops: Vec<WriteOp> = batch
            .drain(..)
            .filter(|((key, _), here)| match here {
                Some(here) => st.index.get(key) == Some(*here),
                None => st.index.get(key).is_none(),
            })
            .map(|(op, _)| op)
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.append(&mut st, &ops)
    }
}

/// A thread that compacts the log every `interval` until dropped.
#[derive(Debug)]
pub struct Compactor {
    stop: std::sync::Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compactor {
    pub fn start(log: std::sync::Arc<MessageLog>, interval: std::time::Duration) -> Compactor {
        let stop =
            std::sync::Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("switchyard-compactor".into())
            .spawn(move || loop {
                {
                    let mut stopped = flag.0.lock();
                    if !*stopped {
                        flag.1.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        return;
                    }
                }
                loop {
                    match log.compact_once() {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "message log compaction failed; retrying later");
                            break;
                        }
                    }
                }
            })
            .expect("spawn compactor thread");
        Compactor {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
