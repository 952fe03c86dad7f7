//! The group-commit flusher: one thread makes writes durable for everyone.
//!
//! Why one thread: one `fdatasync` can cover any number of writes, and many small flushes are
//! slow. Writers append their frame to the message log, then take a *ticket* (a share of the
//! next flush to start) and wait until that flush is done. The flusher takes all requests that
//! arrived since the last flush, flushes the log once ([`MessageLog::flush`]: write + fdatasync)
//! and wakes the waiters of that flush.
//!
//! Invariant (why a ticket is safe): a writer's batch is applied *before* it takes the next
//! flush under the lock, and that flush starts only *after* the flusher swaps it out under the
//! same lock, so the flush covers the batch.
//!
//! Each flush has its own [`Flush`] record, which its tickets share: finishing a flush wakes
//! exactly the writers it covers. (A single channel for "the latest finished flush" would wake
//! every waiter on every flush, including the ones waiting for the next one: one wasted wake-up
//! per publish under load.)
//!
//! Under load the flusher *gathers*. The flusher is *busy* when tickets are already waiting as
//! a flush ends: flushes run back to back, each covering only what arrived during the last
//! `fdatasync`. Then, if the last flush covered at least [`GATHER_ABOVE`] tickets and this one
//! has fewer than [`GATHER_ENOUGH`], it starts up to [`GATHER_FOR`] later (the ticket that
//! makes it `GATHER_ENOUGH` starts it at once). Each `fdatasync` costs the flusher tens of µs
//! of CPU and the writers' threads a round of wake-ups whatever it covers, so larger batches
//! buy CPU and throughput. A writer that finds the flusher idle never waits.
//!
//! Why "busy" and not "the last batch was large" (the rule before, with a bar of 16): when
//! writers slow down — a costlier plugin, a busier core — batches shrink below any such bar
//! while flushes still run back to back, and the flusher then stays in small batches for good;
//! measured (`benches/routing.rs`, `x-wasm`), 4–10 publishes per flush against 11–28 with this
//! rule. (Ending the wait as soon as the batch is as large as the last one was measured too:
//! it keeps batches from growing and bought about half as much.)
//!
//! Relaxed writers only mark the store dirty; the flusher then flushes within `interval`.
//! A failed flush poisons the flusher: every current and future waiter gets an error (checked
//! when the ticket completes, so a flush that raced the failure acknowledges nothing either),
//! so nothing is acknowledged that may not be stored. A flush that found the disk full
//! ([`StoreError::NoSpace`]) fails only its own waiters; its frames stay queued in the log and
//! the flusher retries every [`NO_SPACE_RETRY`] until one succeeds (space returned).

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use super::{MessageLog, StoreError};

/// How often a flush that found the disk full is retried.
pub const NO_SPACE_RETRY: Duration = Duration::from_millis(200);

/// Tickets the last flush must have covered for the next one to gather: a flush of one
/// ticket is a lone writer, whatever the timing says.
pub const GATHER_ABOVE: usize = 2;

/// Tickets that make a gathering flush start at once: beyond this the `fdatasync`'s cost is
/// spread thin enough that waiting buys nothing.
pub const GATHER_ENOUGH: usize = 64;

/// The longest a flush waits while gathering: less than one `fdatasync` on the disks measured
/// (100–160 µs), so under load a publisher's wait grows by at most about one flush.
pub const GATHER_FOR: Duration = Duration::from_micros(100);

/// Whether the next flush, covering `tickets` so far, gathers: the flusher is `busy` (tickets
/// were waiting when the last flush ended), that flush covered `last_batch`, and this one is
/// not yet large.
fn gathers(busy: bool, last_batch: usize, tickets: usize) -> bool {
    busy && last_batch >= GATHER_ABOVE && tickets < GATHER_ENOUGH
}

/// Why a flush did not make its writes durable.
#[derive(Debug, Clone)]
enum Failure {
    Poisoned(Arc<str>),
    NoSpace(Arc<str>),
    /// The store was closed before the flush ran.
    Closed,
}

/// One flush: set once when it has finished, then its waiters are woken.
#[derive(Debug, Default)]
struct Flush {
    result: OnceLock<Result<(), Failure>>,
    finished: Notify,
}

impl Flush {
    fn finish(&self, result: Result<(), Failure>) {
        // Set before waking: a waiter that registered late finds the result instead.
        let _ = self.result.set(result);
        self.finished.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct Requests {
    /// The next flush to start; tickets taken now wait for it.
    next: Arc<Flush>,
    /// Relaxed writes happened since the last flush.
    dirty: bool,
    shutdown: bool,
    /// Tickets taken for `next`: more than zero means someone waits for it.
    tickets: usize,
}

#[derive(Debug)]
struct Shared {
    path: Arc<std::path::Path>,
    requests: Mutex<Requests>,
    wake: Condvar,
    /// Set once, by the first failed write or flush; read on every write.
    poisoned: OnceLock<Arc<str>>,
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
    flush: Arc<Flush>,
    /// For the log's directory (errors) and the poison.
    shared: Arc<Shared>,
}

impl Ticket {
    /// Wait until the flush covering this ticket's writes has finished.
    pub async fn wait(self) -> Result<(), StoreError> {
        let result = loop {
            let finished = self.flush.finished.notified();
            tokio::pin!(finished);
            // Registered before the check, so a `finish` between the two still wakes us.
            finished.as_mut().enable();
            if let Some(result) = self.flush.result.get() {
                break result;
            }
            finished.await;
        };
        // A store poisoned while this ticket waited acknowledges nothing more, even a flush
        // that raced the failure and succeeded: the writer gets an error and may retry
        // (at-least-once), never an acknowledgement from a store that refuses writes.
        if let Some(first) = self.shared.poisoned.get() {
            return Err(StoreError::Poisoned(first.to_string()));
        }
        match result {
            Ok(()) => Ok(()),
            Err(Failure::Poisoned(msg)) => Err(StoreError::Poisoned(msg.to_string())),
            Err(Failure::NoSpace(cause)) => Err(StoreError::NoSpace {
                path: self.shared.path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::StorageFull, cause.to_string()),
            }),
            Err(Failure::Closed) => Err(StoreError::Closed),
        }
    }
}

impl Flusher {
    /// Start the flusher for `log`.
    pub fn start(log: Arc<MessageLog>, interval: Duration) -> Flusher {
        let shared = Arc::new(Shared {
            path: log.dir().into(),
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            poisoned: OnceLock::new(),
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
        let mut r = self.shared.requests.lock();
        let flush = r.next.clone();
        r.tickets += 1;
        let (first, enough) = (r.tickets == 1, r.tickets == GATHER_ENOUGH);
        drop(r);
        // Only the first request of a flush wakes the flusher (it reads `tickets` under the
        // lock, so later ones are seen without a wake-up of their own), and the one that ends
        // a gathering wait.
        if first || enough {
            self.shared.wake.notify_one();
        }
        Ticket {
            flush,
            shared: self.shared.clone(),
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
        self.shared.poisoned.get().map(|m| m.to_string())
    }

    /// Poison the store after a failed write: waiters and later writers get errors.
    pub fn poison(&self, msg: String) {
        let msg: Arc<str> = msg.into();
        let _ = self.shared.poisoned.set(msg.clone());
        // Tickets not yet covered by a running flush fail now; the running flush fails its
        // own when it ends (see `run`).
        let next = self.shared.requests.lock().next.clone();
        next.finish(Err(Failure::Poisoned(msg)));
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.requests.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Tickets taken after the last flush started (none, when the store is dropped
        // normally) learn that nothing will flush them.
        let next = self.shared.requests.lock().next.clone();
        next.finish(Err(Failure::Closed));
    }
}

fn run(shared: &Shared, log: &MessageLog, interval: Duration) {
    // Whether the last flush found the disk full: the error is logged once per episode.
    let mut full = false;
    // Tickets the last flush covered.
    let mut last_batch = 0;
    loop {
        let (flush, shutdown) = {
            let mut r = shared.requests.lock();
            // While the disk is full, retry the unwritten frames even if nobody asks.
            let stalled = log.stalled().is_some();
            // Tickets arrived while the last flush ran: flushes are running back to back.
            let busy = r.tickets > 0;
            loop {
                if r.tickets > 0 || r.shutdown {
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
            if gathers(busy, last_batch, r.tickets) && !r.shutdown && !stalled {
                // The lock is released meanwhile, so tickets join this flush; the one that makes
                // it `GATHER_ENOUGH` (or a relaxed write, or shutdown) ends the wait early.
                shared.wake.wait_for(&mut r, GATHER_FOR);
            }
            last_batch = std::mem::take(&mut r.tickets);
            r.dirty = false;
            (std::mem::take(&mut r.next), r.shutdown)
        };
        let result = match log.flush() {
            Ok(()) => {
                full = false;
                Ok(())
            }
            Err(StoreError::NoSpace { source, .. }) => {
                let cause = source.to_string();
                if !full {
                    tracing::error!(error = %cause, "the disk is full: writes are refused until space is freed");
                }
                full = true;
                Err(Failure::NoSpace(cause.into()))
            }
            Err(e) => {
                let msg: Arc<str> = e.to_string().into();
                tracing::error!(error = %msg, "store flush failed; refusing further writes");
                let _ = shared.poisoned.set(msg.clone());
                Err(Failure::Poisoned(msg))
            }
        };
        flush.finish(result);
        if shutdown {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{gathers, Flusher, GATHER_ABOVE, GATHER_ENOUGH, GATHER_FOR};
    use crate::store::MessageLog;

    #[test]
    fn only_a_busy_flusher_gathers_and_only_small_batches() {
        assert!(
            !gathers(false, 40, 1),
            "an idle flusher never makes a writer wait"
        );
        assert!(
            !gathers(true, 1, 1),
            "a lone writer's flushes do not gather"
        );
        assert!(gathers(true, GATHER_ABOVE, 1));
        assert!(
            gathers(true, 5, 3),
            "small batches gather: the old rule's trap"
        );
        assert!(gathers(true, 200, GATHER_ENOUGH - 1));
        assert!(
            !gathers(true, 200, GATHER_ENOUGH),
            "a large batch starts at once"
        );
    }

    /// Closed-loop writers, each appending a frame and waiting for it, as publishers with
    /// confirms do: fewer of them than `GATHER_ENOUGH`, so once flushes run back to back
    /// every gathering wait ends only by its time bound. Every ticket must still complete
    /// within that bound plus a flush. Fails if the gathering wait has no bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_writers_wait_only_the_gathering_bound() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(MessageLog::open(dir.path(), 1 << 20).unwrap());
        let flusher = Arc::new(Flusher::start(log.clone(), Duration::from_millis(5)));
        let writers = (0..8u64).map(|w| {
            let (log, flusher) = (log.clone(), flusher.clone());
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                for i in 0..200u64 {
                    let key = (w << 32 | i).to_be_bytes().to_vec();
                    log.write(&[(key, Some(vec![0; 256]))]).unwrap();
                    let started = Instant::now();
                    let ticket =
                        tokio::time::timeout(Duration::from_secs(10), flusher.ticket().wait());
                    ticket.await.expect("a gathering flush ended").unwrap();
                    slowest = slowest.max(started.elapsed());
                }
                slowest
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            let slowest = writer.await.unwrap();
            // The bound plus one flush, with room for a loaded machine.
            assert!(slowest < GATHER_FOR + Duration::from_secs(1), "{slowest:?}");
        }
    }
}
