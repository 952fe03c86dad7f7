//! The group-commit flusher: one thread makes writes durable for everyone.
//!
//! Why one thread: one `fdatasync` can cover any number of writes, and many small flushes are
//! slow. Writers append their frame to the message log, then take a *ticket* (the number of the
//! next flush to start) and wait until that flush is done. The flusher takes all requests that
//! arrived since the last flush, flushes the log once ([`MessageLog::flush`]: write + fdatasync)
//! and publishes the new completed epoch to every waiter.
//!
//! Invariant (why a ticket is safe): a writer's batch is applied *before* it reads the epoch
//! counter under the lock, and the flush for that epoch starts only *after* the flusher bumps
//! the counter under the same lock, so the flush covers the batch.
//!
//! Relaxed writers only mark the store dirty; the flusher then flushes within `interval`.
//! A failed flush poisons the flusher: every current and future waiter gets an error, so
//! nothing is acknowledged that may not be stored. A flush that found the disk full
//! ([`StoreError::NoSpace`]) fails only its own waiters; its frames stay queued in the log and
//! the flusher retries every [`NO_SPACE_RETRY`] until one succeeds (space returned).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::{MessageLog, StoreError};

/// How often a flush that found the disk full is retried.
pub const NO_SPACE_RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct Requests {
    /// Number of the next flush to start.
    next_epoch: u64,
    /// Someone waits for `next_epoch`.
    wanted: bool,
    /// Relaxed writes happened since the last flush.
    dirty: bool,
    shutdown: bool,
}

/// What waiters watch: the highest finished epoch, or a poison message.
#[derive(Debug, Clone, Default)]
struct Done {
    epoch: Option<u64>,
    poisoned: Option<Arc<str>>,
    /// Epochs (inclusive ranges, ascending, merged) whose flush found the disk full, and why
    /// the last one did. Kept whole so a waiter that looks late still learns its flush failed;
    /// it grows by one range per full-disk episode.
    no_space: Vec<(u64, u64)>,
    no_space_cause: Option<Arc<str>>,
}

impl Done {
    fn failed(&self, epoch: u64) -> bool {
        self.no_space
            .iter()
            .any(|&(from, to)| (from..=to).contains(&epoch))
    }

    fn record_no_space(&mut self, epoch: u64, cause: &str) {
        match self.no_space.last_mut() {
            Some((_, to)) if *to + 1 == epoch => *to = epoch,
            _ => self.no_space.push((epoch, epoch)),
        }
        self.no_space_cause = Some(cause.into());
        self.epoch = Some(epoch);
    }
}

#[derive(Debug)]
struct Shared {
    path: Arc<std::path::Path>,
    requests: Mutex<Requests>,
    wake: Condvar,
    done: watch::Sender<Done>,
}

/// Handle to the flusher thread; dropping it flushes once more and stops the thread.
#[derive(Debug)]
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A promise that a write becomes durable; see [`Flusher::ticket`].
#[derive(Debug)]
pub struct Ticket {
    epoch: u64,
    /// The log's directory, for errors.
    path: Arc<std::path::Path>,
    done: watch::Receiver<Done>,
}

impl Ticket {
    /// Wait until the flush covering this ticket's writes has finished.
    pub async fn wait(mut self) -> Result<(), StoreError> {
        let epoch = self.epoch;
        let state = self
            .done
            .wait_for(|d| d.poisoned.is_some() || d.epoch.is_some_and(|e| e >= epoch))
            .await
            .map_err(|_| StoreError::Closed)?;
        if let Some(msg) = &state.poisoned {
            return Err(StoreError::Poisoned(msg.to_string()));
        }
        if state.failed(epoch) {
            let cause = state.no_space_cause.as_deref().unwrap_or("disk full");
            return Err(StoreError::NoSpace {
                path: self.path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::StorageFull, cause.to_owned()),
            });
        }
        Ok(())
    }
}

impl Flusher {
    /// Start the flusher for `log`.
    pub fn start(log: Arc<MessageLog>, interval: Duration) -> Flusher {
        let (done, _) = watch::channel(Done::default());
        let shared = Arc::new(Shared {
            path: log.dir().into(),
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            done,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("switchyard-flusher".into())
            .spawn(move || run(&s, &log, interval))
            .expect("spawn flusher thread");
        Flusher {
            shared,
            thread: Some(thread),
        }
    }

    /// Ask for a flush covering every write applied before this call; wait on the ticket.
    pub fn ticket(&self) -> Ticket {
        let done = self.shared.done.subscribe();
        let mut r = self.shared.requests.lock();
        r.wanted = true;
        let epoch = r.next_epoch;
        drop(r);
        self.shared.wake.notify_one();
        Ticket {
            epoch,
            done,
            path: self.shared.path.clone(),
        }
    }

    /// Note a relaxed write; it is flushed within the flush interval.
    pub fn mark_dirty(&self) {
        let mut r = self.shared.requests.lock();
        if !r.dirty {
            r.dirty = true;
            drop(r);
            self.shared.wake.notify_one();
        }
    }

    /// The poison message, if a flush has failed.
    pub fn poisoned(&self) -> Option<String> {
        self.shared
            .done
            .borrow()
            .poisoned
            .as_ref()
            .map(|m| m.to_string())
    }

    /// Poison the store after a failed write: waiters and later writers get errors.
    pub fn poison(&self, msg: String) {
        self.shared
            .done
            .send_modify(|d| d.poisoned = Some(msg.into()));
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.requests.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, log: &MessageLog, interval: Duration) {
    loop {
        let (epoch, shutdown) = {
            let mut r = shared.requests.lock();
            // While the disk is full, retry the unwritten frames even if nobody asks.
            let stalled = log.stalled().is_some();
            loop {
                if r.wanted || r.shutdown {
                    break;
                }
                if r.dirty || stalled {
                    // Relaxed writes wait at most `interval`; a ticket cuts the wait short.
                    let wait = if stalled { NO_SPACE_RETRY } else { interval };
                    let timed_out = shared.wake.wait_for(&mut r, wait).timed_out();
                    if timed_out {
                        break;
                    }
                } else {
                    shared.wake.wait(&mut r);
                }
            }
            let epoch = r.next_epoch;
            r.next_epoch += 1;
            r.wanted = false;
            r.dirty = false;
            (epoch, r.shutdown)
        };
        match log.flush() {
            Ok(()) => shared.done.send_modify(|d| d.epoch = Some(epoch)),
            Err(StoreError::NoSpace { source, .. }) => {
                let cause = source.to_string();
                if !shared.done.borrow().failed(epoch.wrapping_sub(1)) {
                    tracing::error!(error = %cause, "the disk is full: writes are refused until space is freed");
                }
                shared
                    .done
                    .send_modify(|d| d.record_no_space(epoch, &cause));
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "store flush failed; refusing further writes");
                shared.done.send_modify(|d| d.poisoned = Some(msg.into()));
            }
        }
        if shutdown {
            return;
        }
    }
}
