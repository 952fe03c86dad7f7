//! Compaction: give disk back once a sealed segment holds little live data.
//!
//! A victim is a sealed segment whose live values fill at most half of it. Its live entries
//! (index still pointing into it) are appended again at the log's end, a few at a time under
//! the state lock — so an entry removed meanwhile is never resurrected — then flushed; only then
//! is the segment deleted. Removal markers in the victim are carried forward for keys that are
//! absent, unless the victim is the oldest segment (no older value can exist to resurrect).
//! Each byte is copied at most once per halving of live data, so write amplification stays ≤ 2.

use std::fs;

use super::frame::{self, Decoded, Op, WriteOp};
use super::{io, segment, Loc, MessageLog};
use crate::store::StoreError;

/// Entries copied per hold of the state lock.
const BATCH: usize = 256;

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
            let bytes = fs::read(segment::path(&self.dir, victim)).map_err(io(&self.dir))?;
            let mut at = 0;
            let mut candidates = Vec::new();
            while at < bytes.len() {
                let Decoded::Frame { len, ops } = frame::decode(&bytes[at..]) else {
                    break;
                };
                for op in ops {
                    candidates.push((at, op));
                }
                at += len;
            }
            for group in candidates.chunks(BATCH) {
                let mut st = self.state.lock();
                let ops: Vec<WriteOp> = group
                    .iter()
                    .filter_map(|(frame_at, op)| match *op {
                        Op::Put {
                            key,
                            value_off,
                            value_len,
                        } => {
                            let here = Loc {
                                seg: victim,
                                len: value_len as u32,
                                off: (frame_at + value_off) as u32,
                            };
                            (st.index.get(key) == Some(here)).then(|| {
                                let v = &bytes[here.off as usize..][..value_len];
                                (key.to_vec(), Some(v.to_vec()))
                            })
                        }
                        Op::Del { key } => (!is_oldest && st.index.get(key).is_none())
                            .then(|| (key.to_vec(), None)),
                    })
                    .collect();
                self.append(&mut st, &ops)?;
            }
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
