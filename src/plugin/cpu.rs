//! The CPU time one plugin call has used, across the polls of its fiber.
//!
//! Why not count epoch ticks, as direct calls do: a fiber call may run in the penalty lane at
//! the lowest CPU priority, so on a busy machine it gets short slices far apart. Each slice that
//! crosses an epoch boundary observes a tick, so ticks would charge a starved call for time it
//! spent waiting, and a plugin that is merely slow would time out only because the machine is
//! busy. The thread's own CPU clock charges only what the call computed.
//!
//! Invariant: only the time inside [`metered`]'s polls is charged, and polls of other calls on
//! the same thread are not (each call has its own meter), so calls may interleave on a thread.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

/// Nanoseconds of CPU this thread has used.
fn thread_cpu_ns() -> u64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// CPU used by one call. Shared by the future that polls the call and the epoch callback that
/// reads it from inside the call.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    /// CPU of the polls that have ended.
    spent_ns: AtomicU64,
    /// The thread's CPU clock when the current poll began; 0 between polls.
    poll_began_ns: AtomicU64,
}

impl CpuMeter {
    /// CPU used so far, including the poll in progress (read from inside it, on its thread).
    pub fn used(&self) -> Duration {
        let mut ns = self.spent_ns.load(Relaxed);
        let began = self.poll_began_ns.load(Relaxed);
        if began != 0 {
            ns += thread_cpu_ns().saturating_sub(began);
        }
        Duration::from_nanos(ns)
    }

    /// Zero, for the next call.
    pub fn reset(&self) {
        self.spent_ns.store(0, Relaxed);
        self.poll_began_ns.store(0, Relaxed);
    }

    fn begin(&self) {
        self.poll_began_ns.store(thread_cpu_ns().max(1), Relaxed);
    }

    fn end(&self) {
        let began = self.poll_began_ns.swap(0, Relaxed);
        self.spent_ns
            .fetch_add(thread_cpu_ns().saturating_sub(began), Relaxed);
    }
}

/// Runs `fut`, charging the CPU of each of its polls to `meter`.
pub(crate) async fn metered<F: Future>(meter: &CpuMeter, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        meter.begin();
        let poll = fut.as_mut().poll(cx);
        meter.end();
        poll
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computes for `d` of this thread's CPU (not wall-clock time: the test machine is busy).
    fn spin(d: Duration) {
        let until = thread_cpu_ns() + d.as_nanos() as u64;
        while thread_cpu_ns() < until {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn charges_polls_not_the_waits_between_them() {
        let meter = CpuMeter::default();
        metered(&meter, async {
            spin(Duration::from_millis(20));
            // A wait off the CPU: not charged.
            tokio::time::sleep(Duration::from_millis(200)).await;
            spin(Duration::from_millis(20));
        })
        .await;
        let used = meter.used();
        assert!(used >= Duration::from_millis(40), "{used:?}");
        assert!(used < Duration::from_millis(150), "{used:?}");
    }

    #[test]
    fn reads_the_poll_in_progress() {
        let meter = CpuMeter::default();
        meter.begin();
        spin(Duration::from_millis(10));
        assert!(meter.used() >= Duration::from_millis(10));
        meter.end();
        let after = meter.used();
        spin(Duration::from_millis(10));
        assert_eq!(meter.used(), after, "nothing is charged between polls");
    }
}
