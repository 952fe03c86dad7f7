//! Consumers running for one phase, whatever the broker: a shared delivery count the phase
//! waits on, a stop flag, and the consumer tasks (which return their latency samples).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long a consumer waits for a delivery before it acknowledges what it holds.
pub const IDLE: Duration = Duration::from_millis(20);

/// State the consumer tasks of one phase share.
#[derive(Debug, Clone)]
pub struct Tally {
    count: Arc<AtomicUsize>,
    expect: usize,
    reached: Arc<Notify>,
    stop: Arc<AtomicBool>,
}

impl Tally {
    pub fn new(expect: usize) -> Tally {
        Tally {
            count: Arc::new(AtomicUsize::new(0)),
            expect,
            reached: Arc::new(Notify::new()),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Count one delivery.
    pub fn delivered(&self) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == self.expect {
            self.reached.notify_one();
        }
    }

    /// True once the phase is over: consumers acknowledge what they hold and exit.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The consumers of one phase.
#[derive(Debug)]
pub struct Consuming {
    pub tally: Tally,
    pub tasks: Vec<JoinHandle<anyhow::Result<Vec<u64>>>>,
}

impl Consuming {
    /// Waits until every expected delivery arrived (an error after `limit`, naming how many
    /// did), then stops the consumers. Returns when the last delivery arrived and the latency
    /// samples (µs) the consumers took.
    pub async fn finish(self, limit: Duration) -> anyhow::Result<(Instant, Vec<u64>)> {
        let deadline = Instant::now() + limit;
        let t = &self.tally;
        let result = loop {
            if t.count.load(Ordering::Relaxed) >= t.expect {
                break Ok(Instant::now());
            }
            if self.tasks.iter().any(|h| h.is_finished()) {
                break Err(anyhow::anyhow!(
                    "a consumer stopped early after {} of {} deliveries",
                    t.count.load(Ordering::Relaxed),
                    t.expect
                ));
            }
            if Instant::now() > deadline {
                break Err(anyhow::anyhow!(
                    "only {} of {} deliveries within {limit:?}",
                    t.count.load(Ordering::Relaxed),
                    t.expect
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), t.reached.notified()).await;
        };
        t.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        let mut failure = None;
        for task in self.tasks {
            match task.await.context("consumer task panicked")? {
                Ok(s) => samples.extend(s),
                Err(e) => failure = Some(e),
            }
        }
        let done = result?;
        if let Some(e) = failure {
            bail!("consumer failed: {e:#}");
        }
        Ok((done, samples))
    }
}
