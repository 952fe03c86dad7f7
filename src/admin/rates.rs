//! Publish and deliver rates per queue, from the queue engine's running totals sampled at a
//! fixed interval (the engine keeps counts, not clocks; rates are a presentation concern).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::AdminState;

/// How often totals are sampled; a rate is the change over the last interval.
pub const INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueRates {
    pub publish_per_s: f64,
    pub deliver_per_s: f64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    published: u64,
    delivered: u64,
    rates: QueueRates,
}

#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<HashMap<String, Sample>>,
    /// When the previous round of samples was taken. A queue first seen in this round was
    /// declared since then, with totals starting at zero, so that round is its baseline.
    last_round: Mutex<Option<Instant>>,
}

impl Rates {
    pub fn get(&self, queue: &str) -> QueueRates {
        self.samples
            .lock()
            .get(queue)
            .map(|s| s.rates)
            .unwrap_or_default()
    }

    fn record(&self, queue: &str, published: u64, delivered: u64, now: Instant) {
        let mut samples = self.samples.lock();
        let last_round = *self.last_round.lock();
        let baseline = last_round.map(|at| Sample {
            at,
            published: 0,
            delivered: 0,
            rates: QueueRates::default(),
        });
        let rates = match samples.get(queue).copied().or(baseline) {
            Some(prev) => {
                let dt = now.duration_since(prev.at).as_secs_f64().max(1e-3);
                QueueRates {
                    publish_per_s: published.saturating_sub(prev.published) as f64 / dt,
                    deliver_per_s: delivered.saturating_sub(prev.delivered) as f64 / dt,
                }
            }
            None => QueueRates::default(),
        };
        samples.insert(
            queue.to_owned(),
            Sample {
                at: now,
                published,
                delivered,
                rates,
            },
        );
    }
}

/// Sample every queue every [`INTERVAL`] until aborted.
pub async fn sample_forever(state: AdminState) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let queues = state.broker().queues();
        let now = Instant::now();
        let names = queues.list();
        for name in &names {
            if let Ok(s) = queues.stats(name) {
                state
                    .inner
                    .rates
                    .record(name.as_str(), s.published_total, s.delivered_total, now);
            }
        }
        *state.inner.rates.last_round.lock() = Some(now);
        let live: std::collections::HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
        state
            .inner
            .rates
            .samples
            .lock()
            .retain(|q, _| live.contains(q.as_str()));
    }
}
