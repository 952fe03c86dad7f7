//! The penalty lane: one thread at the lowest CPU priority where the calls of misbehaving plugin
//! versions run, so that they cannot take CPU from healthy ones.
//!
//! Why: a call that computes for its whole deadline, or traps and needs a fresh instance on
//! every message, holds a serving thread for milliseconds at a time. On a 2-core machine,
//! publishes to *other* exchanges queued behind such calls: a neighbour looping into its
//! deadline cut a healthy exchange's throughput in half (`docs/reliability.md`).
//!
//! How: the lane is an OS thread at nice 19 running its own current-thread tokio runtime. A
//! penalized version's calls (see `penalty.rs`) are sent to it, and their callers await the
//! answer without holding a serving thread. The kernel gives the lane only the CPU that
//! nice-0 threads leave (a weight of 15 against 1024 each), so under full load a bad plugin
//! gets ~1% of a core and an idle machine still runs it at full speed. Deadlines in the lane
//! are CPU time (`cpu.rs`), so a starved call is not failed for waiting.
//!
//! Invariant: the lane never runs a direct call; every call in it is a fiber that yields at
//! each tick, so calls of different versions interleave and none holds the lane.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

/// The lane thread's nice value: the lowest priority Linux has for normal threads.
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
                // On Linux the nice value is per thread: `None` is the calling thread.
                if let Err(e) = rustix::process::setpriority_process(None, NICE) {
                    tracing::warn!(error = %e, "cannot lower the plugin penalty lane's priority");
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_calls_on_a_low_priority_thread() {
        let mine = rustix::process::getpriority_process(None).unwrap();
        let lane = Lane::start().unwrap();
        let (name, nice) = lane
            .run(async {
                let name = std::thread::current().name().map(str::to_owned);
                (name, rustix::process::getpriority_process(None).unwrap())
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("plugin-lane"));
        assert_eq!(nice, NICE);
        // The caller's thread keeps its own priority.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), mine);
    }

    #[tokio::test]
    async fn calls_interleave() {
        let lane = Lane::start().unwrap();
        let (tx, rx) = oneshot::channel::<u32>();
        // The first call waits for the second: they would deadlock if the lane ran one at a time.
        let first = lane.run(async move { rx.await.unwrap() + 1 });
        let second = lane.run(async move { tx.send(41).unwrap() });
        let (first, second) = tokio::join!(first, second);
        assert_eq!((first, second), (Some(42), Some(())));
    }
}
