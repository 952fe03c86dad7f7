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
//! nothing is acknowledged that may not be stored.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::{MessageLog, StoreError};

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
}

#[derive(Debug)]
struct Shared {
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
        match &state.poisoned {
            Some(msg) => Err(StoreError::Poisoned(msg.to_string())),
            None => Ok(()),
        }
    }
}

impl Flusher {
    /// Start the flusher for `log`.
    pub fn start(log: Arc<MessageLog>, interval: Duration) -> Flusher {
        let (done, _) = watch::channel(Done::default());
        let shared = Arc::new(Shared {
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
        Ticket { epoch, done }
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
            loop {
                if r.wanted || r.shutdown {
                    break;
                }
                if r.dirty {
                    // Relaxed writes wait at most `interval`; a ticket cuts the wait short.
                    let timed_out = shared.wake.wait_for(&mut r, interval).timed_out();
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
        let result = log.flush().map_err(|e| e.to_string());
        match result {
            Ok(()) => shared.done.send_modify(|d| d.epoch = Some(epoch)),
            Err(msg) => {
                tracing::error!(error = %msg, "store flush failed; refusing further writes");
                shared.done.send_modify(|d| d.poisoned = Some(msg.into()));
            }
        }
        if shutdown {
            return;
        }
    }
}
