//! The penalty lane: one thread at the lowest CPU priority where the calls of misbehaving plugin
//! versions run, so that they cannot take CPU from healthy ones.
//!
//! Why: a call that computes for its whole deadline, or traps and needs a fresh instance on
//! every message, holds a serving thread for milliseconds at a time. On a 2-core machine,
//! publishes to *other* exchanges queued behind such calls: a neighbour looping into its
//! deadline cut a healthy exchange's throughput in half (`docs/reliability.md`).
//!
//! How: the lane is an OS thread under Linux's `SCHED_IDLE` policy running its own
//! current-thread tokio runtime. A penalized version's calls (see `penalty.rs`) are sent to it,
//! and their callers await the answer without holding a serving thread. `SCHED_IDLE` runs the
//! lane only on a core no normal thread wants, and a normal thread that wakes up preempts it at
//! once. Nice 19 alone was not enough: the scheduler let the lane finish its slice (up to a few
//! ms) before a waking serving thread got the core, which cost a healthy exchange 12–29% of
//! its throughput beside a looping plugin (`docs/reliability.md`). An idle machine still runs
//! the lane at full speed. Deadlines in the lane are CPU time (`cpu.rs`), so a starved call is
//! not failed for waiting.
//!
//! Invariant: the lane never runs a direct call; every call in it is a fiber that yields at
//! each tick, so calls of different versions interleave and none holds the lane.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

/// The lane thread's nice value, where `SCHED_IDLE` is refused: the lowest there is.
const NICE: i32 = 19;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A handle to the lane. Cheap to clone; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Lane {
    /// Starts the lane thread.
    pub fn start() -> std::io::Result<Lane> {
        let (jobs, mut incoming) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("plugin-lane".into())
            .spawn(move || {
                lower_priority();
                runtime.block_on(async move {
                    while let Some(job) = incoming.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(Lane { jobs })
    }

    /// Runs `call` on the lane and waits for its output; `None` if the lane has stopped (the
    /// host is shutting down), in which case the caller should run it itself.
    pub async fn run<T, F>(&self, call: F) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = Box::pin(async move {
            let _ = answer.send(call.await);
        });
        self.jobs.send(job).ok()?;
        answered.await.ok()
    }
}

/// Puts the calling thread under `SCHED_IDLE`, or else at nice 19. Scheduling policy and nice
/// value are per thread on Linux, and lowering either needs no privilege.
fn lower_priority() {
    if let Err(e) = idle_policy::set() {
        tracing::debug!(error = %e, "SCHED_IDLE refused; the penalty lane runs at nice 19");
        // `None`: the calling thread.
        if let Err(e) = rustix::process::setpriority_process(None, NICE) {
            tracing::warn!(error = %e, "cannot lower the plugin penalty lane's priority");
        }
    }
}

/// The one call rustix does not wrap.
#[allow(unsafe_code)]
mod idle_policy {
    /// `sched_setscheduler(0, SCHED_IDLE)`: the calling thread.
    pub fn set() -> std::io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call, which
        // only reads it; pid 0 names the calling thread. No other memory is touched.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Whether the calling thread runs under `SCHED_IDLE`.
    #[cfg(test)]
    pub fn is_set() -> bool {
        // SAFETY: takes and returns integers only; pid 0 names the calling thread.
        unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_calls_on_a_low_priority_thread() {
        let mine = rustix::process::getpriority_process(None).unwrap();
        let lane = Lane::start().unwrap();
        let (name, idle) = lane
            .run(async {
                let name = std::thread::current().name().map(str::to_owned);
                (name, idle_policy::is_set())
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("plugin-lane"));
        assert!(idle, "the lane runs under SCHED_IDLE");
        // The caller's thread keeps its own policy and priority.
        assert!(!idle_policy::is_set());
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), mine);
    }

    #[tokio::test]
    async fn calls_interleave() {
        let lane = Lane::start().unwrap();
        let (tx, rx) = oneshot::channel::<u32>();
        // The first call waits for the second: they would deadlock if the lane ran one at a time.
        let first = lane.run(async move { rx.await.unwrap() + 1 });
        let second = lane.run(async move { tx.send(41).unwrap() });
        let both = async { tokio::join!(first, second) };
        let (first, second) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the first call blocked the second: the lane ran one call at a time");
        assert_eq!((first, second), (Some(42), Some(())));
    }
}
