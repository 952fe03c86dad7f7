//! Storage: the sled database under a validated data directory, the keyspace layout, durability
//! modes and the group-commit flusher. Knows nothing of queues' semantics.
//!
//! Invariants:
//! - A [`Store`] is the only handle to its directory (sled holds an exclusive file lock).
//! - [`Store::apply`] either applies the whole batch or nothing; after any failed write or flush
//!   the store is poisoned and refuses further writes, so no caller acknowledges data that may
//!   not be stored.

mod dir;
mod durability;
mod error;
mod flusher;
pub mod keys;

pub use dir::{FORMAT, MARKER, SLED_DIR};
pub use durability::Durability;
pub use error::StoreError;
pub use flusher::{Flusher, Ticket};

use std::path::{Path, PathBuf};
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Fsync,
            cache_capacity: 32 * 1024 * 1024,
            relaxed_flush_interval: Duration::from_millis(5),
        }
    }
}

/// An open data directory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    config: StoreConfig,
    // Field order matters for Drop: the flusher thread (holding a db clone) stops first.
    flusher: Flusher,
    db: sled::Db,
    /// Small, rarely written: format marker and id counters.
    pub meta: sled::Tree,
    /// Queue declarations: name -> record.
    pub queues: sled::Tree,
    /// Everything hot (messages, high-water marks, dedup), so one batch covers any change.
    pub data: sled::Tree,
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
        let data = db.open_tree("data")?;
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
        let db_file = std::fs::File::open(sled_dir.join("db")).ok();
        let flusher = Flusher::start(db.clone(), db_file, config.relaxed_flush_interval);
        Ok(Store {
            path,
            config,
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

    /// Refuse work after a failed write or flush.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.flusher.poisoned() {
            Some(msg) => Err(StoreError::Poisoned(msg)),
            None => Ok(()),
        }
    }

    /// Apply `batch` to the `data` tree atomically. On failure the store is poisoned.
    pub fn apply(&self, batch: sled::Batch) -> Result<(), StoreError> {
        self.check()?;
        self.data.apply_batch(batch).map_err(|e| {
            self.flusher.poison(e.to_string());
            StoreError::Sled(e)
        })
    }

    /// Apply staged writes to the `data` tree, in order. With `atomic` (and more than one
    /// write) they go in one `apply_batch`, all or nothing across a crash; otherwise one by one.
    ///
    /// Why not always a batch: in sled 0.34.7 `apply_batch` takes the global
    /// concurrency-control *write* lock, and `flush()` holds its *read* side for the whole disk
    /// write, so every batch waits for any flush in progress (measured: ~4k publishes/s).
    /// Plain inserts and removes share the read side and proceed during a flush. Writes that
    /// need no atomicity (one message, acks, high-water marks) take that path.
    /// On failure the store is poisoned.
    pub fn write(
        &self,
        ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        atomic: bool,
    ) -> Result<(), StoreError> {
        self.check()?;
        let result = if atomic && ops.len() > 1 {
            let mut batch = sled::Batch::default();
            for (k, v) in ops {
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
            self.data.apply_batch(batch)
        } else {
            ops.into_iter().try_for_each(|(k, v)| match v {
                Some(v) => self.data.insert(k, v).map(drop),
                None => self.data.remove(k).map(drop),
            })
        };
        result.map_err(|e| {
            self.flusher.poison(e.to_string());
            StoreError::Sled(e)
        })
    }

    /// After an [`apply`](Store::apply): a ticket to wait on for `Fsync`, or a dirty mark for
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

    /// Flush synchronously (used for rare metadata writes such as queue declarations).
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.check()?;
        self.db.flush()?;
        Ok(())
    }

    /// Bytes sled reports on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
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
        let mut b = sled::Batch::default();
        b.insert(&keys::message(1, 1), &b"x"[..]);
        s.apply(b).unwrap();
        s.commit(Durability::Fsync).unwrap().wait().await.unwrap();
        assert!(s.commit(Durability::Relaxed).is_none());
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
        let err = s.write(op, false).unwrap_err();
        assert!(err.to_string().contains("simulated I/O error"), "{err}");
        assert!(s.data.is_empty(), "nothing written after the failure");
    }
}
