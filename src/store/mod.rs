//! Storage under a validated data directory: the message log (messages, high-water marks, dedup
//! entries), sled for the small catalog (format, queue declarations, id counters), durability
//! modes, the group-commit flusher and the log compactor. Knows nothing of queues' semantics.
//!
//! Invariants:
//! - A [`Store`] is the only handle to its directory (sled holds an exclusive file lock, taken
//!   before the log is opened).
//! - [`Store::write`] applies its whole group of writes or nothing, also across a crash; after
//!   any failed write or flush the store is poisoned and refuses further writes, so no caller
//!   acknowledges data that may not be stored. The one exception is a full disk
//!   ([`StoreError::NoSpace`]): the flushes that hit it fail their waiters, writes are refused
//!   meanwhile, and the flusher retries the unwritten frames until space returns.
//!
//! `fuzzing`: the entry point of the `store_frame` fuzz target and its regression test.

mod dir;
mod durability;
mod error;
mod flusher;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
mod log;

pub use dir::{FORMAT, MARKER, SLED_DIR};
pub use durability::Durability;
pub use error::StoreError;
pub use flusher::{Flusher, Ticket};
pub use log::{LogStats, MessageLog, ScanPrefix, WriteOp};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long [`Store::open`] retries a locked database before reporting [`StoreError::Locked`].
const LOCK_RETRY: Duration = Duration::from_secs(2);

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Default durability for queues that do not set their own.
    pub durability: Durability,
    /// sled page-cache size. sled's default (1 GiB) lets a large backlog grow the process to
    /// hundreds of MiB; 32 MiB keeps it small (see `docs/benchmarks.md`).
    pub cache_capacity: u64,
    /// Longest time a relaxed write stays unflushed.
    pub relaxed_flush_interval: Duration,
    /// Unflushed bytes above which relaxed publishers wait for a flush ([`Store::pace`]): a
    /// publisher faster than the disk is slowed to the disk's pace instead of growing the
    /// process's memory without bound.
    pub max_unflushed_bytes: u64,
    /// Size at which a message-log segment is sealed and a new one started.
    pub segment_bytes: u64,
    /// How often the compactor looks for sealed segments to reclaim.
    pub compaction_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Fsync,
            cache_capacity: 32 * 1024 * 1024,
            relaxed_flush_interval: Duration::from_millis(5),
            max_unflushed_bytes: 16 << 20,
            segment_bytes: 64 << 20,
            compaction_interval: Duration::from_millis(500),
        }
    }
}

/// An open data directory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    config: StoreConfig,
    // Field order matters for Drop: the compactor and the flusher (which flushes once more)
    // stop before the log and the database close.
    _compactor: log::Compactor,
    flusher: Flusher,
    db: sled::Db,
    /// Small, rarely written: format marker and id counters.
    pub meta: sled::Tree,
    /// Queue declarations: name -> record.
    pub queues: sled::Tree,
    /// Everything hot (messages, high-water marks, dedup), so one frame covers any change.
    pub data: Arc<MessageLog>,
}

impl Store {
    /// Open (or create, when missing or empty) the data directory at `path`.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let path = path.as_ref().to_owned();
        let (sled_dir, fresh) = dir::prepare(&path)?;
        if fresh {
            dir::create_database(&path, config.cache_capacity)?;
        }
        let cfg = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(config.cache_capacity)
            // Our flusher decides when to flush; sled's own timer would only add flushes.
            .flush_every_ms(None);
        // sled's I/O threads may hold the previous handle's file (and its lock) for a moment
        // after it is dropped, so a reopen in the same process retries a "locked" error briefly.
        let started = std::time::Instant::now();
        let db = loop {
            // sled 0.34 can panic on some kinds of damage; report those as corruption too.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cfg.open()))
                .map_err(|p| StoreError::Corrupt {
                    path: path.clone(),
                    detail: panic_text(&p),
                })?;
            match opened.map_err(|e| dir::open_error(&path, e)) {
                Ok(db) => break db,
                Err(StoreError::Locked { .. }) if started.elapsed() < LOCK_RETRY => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        let meta = db.open_tree("meta")?;
        let queues = db.open_tree("queues")?;
        match meta.get("format")? {
            Some(v) if v.as_ref() == FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(StoreError::UnknownFormat {
                    path,
                    found: String::from_utf8_lossy(&v).into_owned(),
                    expected: FORMAT,
                })
            }
            None => {
                return Err(StoreError::Corrupt {
                    path,
                    detail: "the database holds no format key (damaged, or its creation was \
                             interrupted; if it holds nothing you need, remove the directory)"
                        .into(),
                })
            }
        }
        let log_dir = path.join(dir::LOG_DIR);
        if !log_dir.is_dir() {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("the {}/ message log directory is missing", dir::LOG_DIR),
            });
        }
        let data = Arc::new(MessageLog::open(&log_dir, config.segment_bytes)?);
        let flusher = Flusher::start(data.clone(), config.relaxed_flush_interval);
        let compactor = log::Compactor::start(data.clone(), config.compaction_interval);
        Ok(Store {
            path,
            config,
            _compactor: compactor,
            flusher,
            db,
            meta,
            queues,
            data,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Refuse work after a failed write or flush, and while the disk is full (until a retried
    /// flush succeeds: [`StoreError::NoSpace`] is temporary).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(msg) = self.flusher.poisoned() {
            return Err(StoreError::Poisoned(msg));
        }
        match self.data.stalled() {
            Some(cause) => Err(StoreError::NoSpace {
                path: self.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::StorageFull, cause),
            }),
            None => Ok(()),
        }
    }

    /// Apply writes to the message log, in order and atomically (one frame: all or nothing,
    /// also across a crash). Visible to reads at once; durable after the next flush (see
    /// [`Store::commit`]). On failure the store is poisoned.
    ///
    /// A full disk does not refuse the write: callers check [`Store::check`] before they change
    /// their in-memory state, and a write that passed that check must land (in memory, flushed
    /// once space returns), or memory and log would disagree.
    pub fn write(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        if let Some(msg) = self.flusher.poisoned() {
            return Err(StoreError::Poisoned(msg));
        }
        self.data.write(ops).inspect_err(|e| {
            // A refused oversize write stored nothing; anything else may have lost data.
            if !matches!(e, StoreError::TooLarge { .. }) {
                self.flusher.poison(e.to_string());
            }
        })
    }

    /// After a [`write`](Store::write): a ticket to wait on for `Fsync`, or a dirty mark for
    /// `Relaxed` (returns `None`).
    pub fn commit(&self, durability: Durability) -> Option<Ticket> {
        match durability {
            Durability::Fsync => Some(self.flusher.ticket()),
            Durability::Relaxed => {
                self.flusher.mark_dirty();
                None
            }
        }
    }

    /// For a relaxed write that has been committed: a ticket to wait on while more than
    /// [`StoreConfig::max_unflushed_bytes`] wait for a flush, else `None`. Only writers that
    /// can be held back ask (publishers); acks and moves never wait on it.
    pub fn pace(&self) -> Option<Ticket> {
        (self.data.unflushed_bytes() > self.config.max_unflushed_bytes)
            .then(|| self.flusher.ticket())
    }

    /// Flush the catalog synchronously (rare metadata writes such as queue declarations). A
    /// full disk is [`StoreError::CatalogFull`]: the caller gets a clear refusal (507 over HTTP)
    /// instead of an opaque storage-engine error.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.check()?;
        self.db.flush()?;
        Ok(())
    }

    /// Bytes on disk: the catalog plus the message log's segments.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()? + self.data.stats().bytes)
    }

    /// Next value of a persistent `u32` counter in `meta` (not flushed here).
    pub fn next_id(&self, key: &str) -> Result<u32, StoreError> {
        let old = self.meta.fetch_and_update(key, |old| {
            let n = old
                .and_then(|v| v.try_into().ok())
                .map(u32::from_be_bytes)
                .unwrap_or(1);
            Some(n.saturating_add(1).to_be_bytes().to_vec())
        })?;
        Ok(old
            .and_then(|v| v.as_ref().try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or(1))
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "sled panicked while opening".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_and_unknown_dirs_are_refused_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
        let err = Store::open(tmp.path(), StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "nothing written"
        );

        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(MARKER), b"switchyard-store/99\n").unwrap();
        let err = Store::open(tmp.path(), StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::UnknownFormat { .. }), "{err}");
    }

    #[test]
    fn create_reopen_and_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), StoreConfig::default()).unwrap();
        let err = Store::open(tmp.path(), StoreConfig::default()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        drop(s);
        Store::open(tmp.path(), StoreConfig::default()).unwrap();
    }

    #[tokio::test]
    async fn ticket_completes_after_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), StoreConfig::default()).unwrap();
        s.write(&[(keys::message(1, 1).to_vec(), Some(b"x".to_vec()))])
            .unwrap();
        s.commit(Durability::Fsync).unwrap().wait().await.unwrap();
        assert!(s.commit(Durability::Relaxed).is_none());
    }

    /// Tickets taken while a flush runs wait for the next one; each flush wakes only its own.
    /// Many writers racing the flusher must all be woken, none left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_ticket_of_many_concurrent_writers_completes() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(tmp.path(), StoreConfig::default()).unwrap());
        let writers: Vec<_> = (0..400u64)
            .map(|seq| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.write(&[(keys::message(1, seq).to_vec(), Some(b"x".to_vec()))])
                        .unwrap();
                    s.commit(Durability::Fsync).unwrap().wait().await.unwrap();
                })
            })
            .collect();
        for w in writers {
            tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a ticket was never woken")
                .unwrap();
        }
    }

    /// The race CI once hit: the flush covering a ticket succeeds, then the store is poisoned
    /// before the writer looks. The writer must not be acknowledged by a refusing store.
    #[tokio::test]
    async fn a_ticket_whose_flush_raced_a_failure_is_not_acknowledged() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), StoreConfig::default()).unwrap();
        let ticket = s.commit(Durability::Fsync).unwrap();
        // Long enough for the flusher to finish this (empty) flush with success.
        std::thread::sleep(Duration::from_millis(100));
        s.flusher.poison("simulated I/O error".into());
        let err = ticket.wait().await.unwrap_err();
        assert!(matches!(err, StoreError::Poisoned(_)), "{err}");
    }

    #[tokio::test]
    async fn a_failed_flush_fails_waiters_and_later_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open(tmp.path(), StoreConfig::default()).unwrap();
        let ticket = s.commit(Durability::Fsync).unwrap();
        s.flusher.poison("simulated I/O error".into());
        let err = ticket.wait().await.unwrap_err();
        assert!(matches!(err, StoreError::Poisoned(_)), "{err}");
        let op = vec![(keys::message(1, 1).to_vec(), Some(b"x".to_vec()))];
        let err = s.write(&op).unwrap_err();
        assert!(err.to_string().contains("simulated I/O error"), "{err}");
        assert!(s.data.is_empty(), "nothing written after the failure");
    }
}
