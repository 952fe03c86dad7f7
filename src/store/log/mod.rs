//! The message log: a log-structured key/value store for the hot keyspace (messages,
//! high-water marks, dedup entries).
//!
//! Why not sled for messages: a message costs a key/value store an insert and a remove, and
//! sled 0.34 spends most of its time copying 1 KiB values through its page cache and taking a
//! global lock for batches (`docs/benchmarks.md`). Queues write once and read in order, so
//! bodies go where Kafka and JetStream put them: appended to segment files. Memory keeps only a
//! small index entry per live key; sled keeps the rarely written catalog (queue declarations).
//!
//! Invariants:
//! - **A frame is atomic.** Every [`MessageLog::write`] is one frame with one checksum; replay
//!   applies a frame whole or not at all, so a fan-out or a dead-letter move never half lands.
//! - **Order.** Frames replay in (segment id, offset) order, which is the order they were
//!   written; the index after replay equals the index before the crash, minus unflushed frames.
//! - **Durability.** A frame is durable once a [`MessageLog::flush`] that started after it was
//!   written has returned: the bytes are written and `fdatasync`ed (and the directory synced when
//!   a segment was created). Nothing else fsyncs. A flush also zero-fills up to [`ZERO_FILL`]
//!   bytes past the active segment's frames, so the next flushes overwrite rather than append.
//! - **Reads see writes at once**: unflushed frames are read from memory.
//! - **Space.** Every index entry points into a segment; a sealed segment holding little live
//!   data is compacted (its live entries re-appended) and deleted, so disk follows live data.

mod compact;
pub(super) mod frame;
mod index;
mod recover;
mod segment;

pub use compact::Compactor;
pub use frame::WriteOp;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::StoreError;
use index::{Index, Loc};

/// A key and its value, as stored.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Largest frame: segment offsets are 32-bit (see `index::Loc`).
const MAX_FRAME: u64 = 1 << 30;

/// Zero-filled space a flush keeps ahead of the active segment's frames (see `segment`): one
/// journal commit per this many bytes of frames instead of one per flush.
const ZERO_FILL: u64 = 1 << 20;

/// Bounds of [`State::chunk_hint`]: a chunk starts with at least a page and never reserves
/// more than this much memory ahead of the frames that fill it.
const CHUNK_HINT_MIN: usize = 4 << 10;
const CHUNK_HINT_MAX: usize = 1 << 20;

/// Sizes of the log, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub segments: usize,
    pub keys: usize,
    /// Bytes of segment files: frames (written or not yet) and zero-filled space.
    pub bytes: u64,
    /// Bytes of values the index points at.
    pub live_bytes: u64,
}

#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    /// Logical length: written bytes plus frames waiting in `pending`/`inflight`.
    len: u64,
    /// Bytes the file holds: written frames and the zero-filled space after them.
    allocated: u64,
    /// Bytes of values in this segment that the index points at.
    live: u64,
}

impl Segment {
    fn new(file: File) -> Segment {
        Segment {
            file: Arc::new(file),
            len: 0,
            allocated: 0,
            live: 0,
        }
    }
}

/// Bytes appended to one segment at `off` and not yet written to its file: whole frames, and
/// never more than the capacity it was allocated with. A frame that does not fit starts the next
/// chunk, at the offset where this one ends, instead of growing this one: growing reallocates
/// and copies every frame already in it, under the log's lock, into memory no cache holds.
#[derive(Debug, Clone)]
struct Chunk {
    seg: u32,
    off: u64,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct State {
    index: Index,
    segments: BTreeMap<u32, Segment>,
    active: u32,
    /// Frames waiting for the next flush, in order.
    pending: Vec<Chunk>,
    /// Capacity for a new pending chunk: what the last flush wrote (bounded), so a chunk
    /// rarely grows by reallocating and copying the frames already in it.
    chunk_hint: usize,
    /// Frames the running flush is writing; readable until it has written them.
    inflight: Arc<Vec<Chunk>>,
    /// A segment file was created since the last directory sync.
    created: bool,
    /// Why a flush failed. Frames it was writing may be lost, so nothing may be acknowledged
    /// after it: every later write and flush fails.
    poisoned: Option<String>,
    /// Why the last flush could not write: the file system is full. Unlike a poison this is
    /// recoverable: the frames stay in `pending` and the next flush writes them again at the
    /// same offsets (see [`MessageLog::flush`]).
    stalled: Option<String>,
}

/// See the module docs.
#[derive(Debug)]
pub struct MessageLog {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    /// One flush at a time.
    flushing: Mutex<()>,
    /// One compaction at a time.
    compacting: Mutex<()>,
    /// Bytes of frames appended and not yet written by a flush (`pending` and `inflight`),
    /// kept outside the state lock so writers can read it for pacing without taking it.
    unflushed: AtomicU64,
    /// The most `unflushed` has been since [`MessageLog::take_unflushed_peak`].
    unflushed_peak: AtomicU64,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    }
}

impl MessageLog {
    /// Opens the log in `dir` (which must exist), replaying every segment. A torn last frame —
    /// a write that a crash cut short, never acknowledged — is cut off; damage before
    /// acknowledged data is [`StoreError::Corrupt`].
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<MessageLog, StoreError> {
        let state = recover::replay(dir)?;
        Ok(MessageLog {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(1 << 16),
            state: Mutex::new(state),
            flushing: Mutex::new(()),
            compacting: Mutex::new(()),
            unflushed: AtomicU64::new(0),
            unflushed_peak: AtomicU64::new(0),
        })
    }

    /// Appends one frame with `ops` (applied in order, atomically) and updates the index.
    /// The frame is in memory until the next [`flush`](MessageLog::flush).
    pub fn write(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.append(&mut self.state.lock(), ops)
    }

    fn append(&self, st: &mut State, ops: &[WriteOp]) -> Result<(), StoreError> {
        if let Some(why) = &st.poisoned {
            return Err(StoreError::Poisoned(why.clone()));
        }
        let size = frame::size(ops) as u64;
        if size > MAX_FRAME {
            return Err(StoreError::TooLarge { bytes: size });
        }
        let active = st.segments[&st.active].len;
        let fits = active + size <= u64::from(u32::MAX);
        if active >= self.segment_bytes || !fits {
            match self.roll(st) {
                Ok(()) => {}
                // The segment size is a soft limit: on a full disk the frame goes into the
                // active segment (in memory until a flush can write it), because a write that
                // passed `Store::check` must land. The next append tries to roll again.
                Err(StoreError::NoSpace { .. }) if fits => {}
                Err(e) => return Err(e),
            }
        }
        let seg = st.active;
        let base = st.segments[&seg].len;
        let fits = |c: &Chunk| c.seg == seg && c.buf.capacity() - c.buf.len() >= size as usize;
        if !st.pending.last().is_some_and(fits) {
            let capacity = st.chunk_hint.max(size as usize);
            st.pending.push(Chunk {
                seg,
                off: base,
                buf: Vec::with_capacity(capacity),
            });
        }
        let chunk = st.pending.last_mut().expect("chunk pushed");
        let frame_start = chunk.buf.len();
        let offsets = frame::encode(ops, &mut chunk.buf);
        let frame_len = (chunk.buf.len() - frame_start) as u64;
        let unflushed = self.unflushed.fetch_add(frame_len, Ordering::Relaxed) + frame_len;
        self.unflushed_peak.fetch_max(unflushed, Ordering::Relaxed);
        st.segments.get_mut(&seg).expect("active segment").len += frame_len;
        for ((key, value), off) in ops.iter().zip(offsets) {
            let new = match (value, off) {
                (Some(v), Some(off)) => Some(Loc {
                    seg,
                    len: v.len() as u32,
                    off: (base + off as u64) as u32,
                }),
                _ => None,
            };
            st.set(key, new);
        }
        Ok(())
    }

    /// Seals the active segment and starts the next one.
    fn roll(&self, st: &mut State) -> Result<(), StoreError> {
        let id = st.active + 1;
        let file = segment::create(&self.dir, id).map_err(|e| {
            if is_full(&e) {
                StoreError::NoSpace {
                    path: self.dir.clone(),
                    source: e,
                }
            } else {
                io(&self.dir)(e)
            }
        })?;
        st.segments.insert(id, Segment::new(file));
        st.active = id;
        st.created = true;
        Ok(())
    }

    /// Writes every frame appended so far and makes it durable.
    ///
    /// A full file system while *writing* (`ENOSPC`, `EDQUOT`) is [`StoreError::NoSpace`] and
    /// not a poison: nothing was synced, the frames go back to the head of `pending`, and a
    /// later flush writes them again at the same offsets (positional writes are idempotent), so
    /// the log recovers once space returns. A failed `fdatasync` still poisons: after one, the
    /// kernel may have dropped the dirty pages, and a retried sync could report success for
    /// data that is gone.
    pub fn flush(&self) -> Result<(), StoreError> {
        let _one = self.flushing.lock();
        let (chunks, files, created, grow) = {
            let mut st = self.state.lock();
            if let Some(why) = &st.poisoned {
                return Err(StoreError::Poisoned(why.clone()));
            }
            if st.pending.is_empty() && !st.created {
                return Ok(());
            }
            let chunks = Arc::new(std::mem::take(&mut st.pending));
            st.inflight = chunks.clone();
            let mut files: Vec<(u32, Arc<File>)> = Vec::new();
            for c in chunks.iter() {
                if files.last().is_none_or(|(s, _)| *s != c.seg) {
                    files.push((c.seg, st.segments[&c.seg].file.clone()));
                }
            }
            let grow = chunks.last().and_then(|c| {
                let end = c.off + c.buf.len() as u64;
                let to = (end + ZERO_FILL).min(end.max(self.segment_bytes));
                (c.seg == st.active && end > st.segments[&c.seg].allocated && to > end)
                    .then_some((c.seg, end, to))
            });
            (chunks, files, std::mem::take(&mut st.created), grow)
        };
        let file_of = |seg: u32| &files.iter().find(|(s, _)| *s == seg).expect("file").1;
        let written = chunks
            .iter()
            .try_for_each(|c| file_of(c.seg).write_all_at(&c.buf, c.off));
        // Zero-filling is an optimisation: if it fails (a full disk), the frames are written
        // anyway and the next flush tries again.
        let grown = grow.filter(|&(seg, end, to)| {
            written.is_ok() && segment::zero_fill(file_of(seg), end, to).is_ok()
        });
        if let Err(e) = written {
            let mut st = self.state.lock();
            st.inflight = Arc::default();
            if is_full(&e) {
                // Retry later: these frames first, then whatever was appended meanwhile.
                let newer = std::mem::take(&mut st.pending);
                st.pending = Arc::unwrap_or_clone(chunks);
                st.pending.extend(newer);
                st.created |= created;
                st.stalled = Some(e.to_string());
                return Err(StoreError::NoSpace {
                    path: self.dir.clone(),
                    source: e,
                });
            }
            st.poisoned = Some(format!("writing the message log: {e}"));
            return Err(io(&self.dir)(e));
        }
        let synced = (|| {
            // In segment order: a later segment is never durable before an earlier one.
            for (_, file) in &files {
                file.sync_data()?;
            }
            if created {
                segment::sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        let written: usize = chunks.iter().map(|c| c.buf.len()).sum();
        self.unflushed.fetch_sub(written as u64, Ordering::Relaxed);
        let mut st = self.state.lock();
        st.inflight = Arc::default();
        // Twice the last flush: most flushes then write one chunk.
        st.chunk_hint = written
            .saturating_mul(2)
            .clamp(CHUNK_HINT_MIN, CHUNK_HINT_MAX);
        match &synced {
            Ok(()) => {
                st.stalled = None;
                if let Some((seg, _, to)) = grown {
                    if let Some(s) = st.segments.get_mut(&seg) {
                        s.allocated = to;
                    }
                }
            }
            Err(e) => st.poisoned = Some(format!("syncing the message log: {e}")),
        }
        drop(st);
        synced.map_err(io(&self.dir))
    }

    /// Bytes appended that no flush has written yet: what a relaxed write's memory is waiting on.
    pub fn unflushed_bytes(&self) -> u64 {
        self.unflushed.load(Ordering::Relaxed)
    }

    /// The most bytes that waited for a flush since the last call: the memory frames held.
    pub fn take_unflushed_peak(&self) -> u64 {
        self.unflushed_peak
            .swap(self.unflushed_bytes(), Ordering::Relaxed)
    }

    /// The directory of the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the last flush could not write (a full file system), until a flush succeeds.
    pub fn stalled(&self) -> Option<String> {
        self.state.lock().stalled.clone()
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        let st = self.state.lock();
        match st.index.get(key.as_ref()) {
            Some(loc) => self.read(&st, loc).map(Some),
            None => Ok(None),
        }
    }

    /// The first key (and its value) in `from..=to`.
    pub fn first_in(&self, from: &[u8], to: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let st = self.state.lock();
        match st.index.first_in(from, to) {
            Some((k, loc)) => Ok(Some((k, self.read(&st, loc)?))),
            None => Ok(None),
        }
    }

    /// The first message seq of queue `qid` at or after `from`, from the index alone.
    pub fn first_seq(&self, qid: u32, from: u64) -> Option<u64> {
        self.state.lock().index.first_seq(qid, from)
    }

    /// Keys starting with `prefix`, in order, with their values read as the iterator advances.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> ScanPrefix<'_> {
        ScanPrefix {
            log: self,
            prefix: prefix.as_ref().to_vec(),
            after: None,
        }
    }

    /// Keys starting with `prefix`, in order; no value is read.
    pub fn scan_keys(&self, prefix: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
        let prefix = prefix.to_vec();
        let mut after: Option<Vec<u8>> = None;
        std::iter::from_fn(move || {
            let st = self.state.lock();
            let (key, _) = st.index.next_with_prefix(&prefix, after.as_deref())?;
            after = Some(key.clone());
            Some(key)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.state.lock().index.is_empty()
    }

    pub fn stats(&self) -> LogStats {
        let st = self.state.lock();
        LogStats {
            segments: st.segments.len(),
            keys: st.index.len(),
            bytes: st.segments.values().map(|s| s.len.max(s.allocated)).sum(),
            live_bytes: st.segments.values().map(|s| s.live).sum(),
        }
    }

    fn read(&self, st: &State, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let (start, len) = (u64::from(loc.off), loc.len as usize);
        for c in st.pending.iter().chain(st.inflight.iter()) {
            if c.seg == loc.seg
                && start >= c.off
                && start + len as u64 <= c.off + c.buf.len() as u64
            {
                let at = (start - c.off) as usize;
                return Ok(c.buf[at..at + len].to_vec());
            }
        }
        segment::read_at(&st.segments[&loc.seg].file, start, len).map_err(io(&self.dir))
    }
}

/// The file system (or the user's quota) is full: the write may succeed once space is freed.
fn is_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
}

impl State {
    /// Points `key` at `new` (or removes it), keeping each segment's live bytes.
    fn set(&mut self, key: &[u8], new: Option<Loc>) {
        let old = match new {
            Some(loc) => {
                self.segments.get_mut(&loc.seg).expect("segment").live += u64::from(loc.len);
                self.index.insert(key, loc)
            }
            None => self.index.remove(key),
        };
        if let Some(old) = old {
            if let Some(s) = self.segments.get_mut(&old.seg) {
                s.live -= u64::from(old.len);
            }
        }
    }
}

/// Iterator of [`MessageLog::scan_prefix`]. Each step looks the next key up afresh, so it holds
/// no lock between steps and sees writes made meanwhile.
#[derive(Debug)]
pub struct ScanPrefix<'a> {
    log: &'a MessageLog,
    prefix: Vec<u8>,
    after: Option<Vec<u8>>,
}

impl Iterator for ScanPrefix<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let st = self.log.state.lock();
        let (key, loc) = st
            .index
            .next_with_prefix(&self.prefix, self.after.as_deref())?;
        self.after = Some(key.clone());
        Some(self.log.read(&st, loc).map(|v| (key, v)))
    }
}

#[cfg(test)]
mod tests;
