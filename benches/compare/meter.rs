//! Measures one phase on one broker: the broker's CPU time, its peak resident set
//! and the harness's own CPU time (the clients: what bounds a result when the broker is idle).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::procfs;

/// How the broker process is watched.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// The broker's process; `None` when it could not be found (its CPU and RSS are then n/a).
    pub pid: Option<u32>,
    /// True for a Switchyard child of the harness: its `VmHWM` is reset per phase and read at
    /// the end (exact peak). Peers are only sampled (`VmRSS` every 20 ms): their `VmHWM` is
    /// the peak of the service's whole life.
    pub own: bool,
}

/// What one phase cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub broker_cpu_s: Option<f64>,
    pub client_cpu_s: f64,
    pub peak_rss: Option<u64>,
}

/// A phase being measured; [`Meter::stop`] ends it.
#[derive(Debug)]
pub struct Meter {
    watched: Watched,
    broker_cpu0: Option<f64>,
    client_cpu0: f64,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<u64>>,
}

fn own_cpu() -> f64 {
    procfs::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

impl Meter {
    pub fn start(watched: Watched) -> Meter {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = watched.pid.map(|pid| {
            if watched.own {
                procfs::reset_peak_rss(pid);
            }
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                loop {
                    peak = peak.max(procfs::status_bytes(pid, "VmRSS:").unwrap_or(0));
                    if stop.load(Ordering::Relaxed) {
                        return peak;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        });
        Meter {
            watched,
            broker_cpu0: watched.pid.and_then(procfs::cpu_seconds),
            client_cpu0: own_cpu(),
            stop,
            sampler,
        }
    }

    pub fn stop(self) -> Measured {
        let client_cpu_s = own_cpu() - self.client_cpu0;
        let broker_cpu_s = match (
            self.watched.pid.and_then(procfs::cpu_seconds),
            self.broker_cpu0,
        ) {
            (Some(end), Some(start)) => Some(end - start),
            _ => None,
        };
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.sampler.and_then(|s| s.join().ok()).filter(|&p| p > 0);
        let hwm = self
            .watched
            .pid
            .filter(|_| self.watched.own)
            .and_then(|pid| procfs::status_bytes(pid, "VmHWM:"));
        Measured {
            broker_cpu_s,
            client_cpu_s,
            peak_rss: sampled.max(hwm),
        }
    }
}
