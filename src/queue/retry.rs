//! Retry schedules for nack-with-requeue.

use serde::{Deserialize, Serialize};

/// How long a message nacked with `requeue` waits before it is ready again.
///
/// The delay is chosen by the number of deliveries so far (1 after the first failed delivery).
/// A delayed message sits in a per-queue timer index, not at the head of the queue, so it never
/// blocks later ready messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum RetryPolicy {
    /// Ready again at once (AMQP's behaviour).
    #[default]
    Immediate,
    /// The same delay every time.
    Fixed { delay_ms: u64 },
    /// `base * factor^(n-1)`, capped, then reduced by up to `jitter` (0.0–1.0) of itself at
    /// random so that a burst of failures does not retry in lockstep.
    Exponential {
        base_ms: u64,
        factor: f64,
        cap_ms: u64,
        jitter: f64,
    },
    /// The n-th delay from the list; the last one repeats.
    List { delays_ms: Vec<u64> },
}

impl RetryPolicy {
    /// Delay before the next delivery, after `deliveries` deliveries (≥ 1). `random` is in
    /// `[0, 1)`, injected so tests are deterministic.
    pub fn delay_ms(&self, deliveries: u32, random: f64) -> u64 {
        let n = deliveries.max(1);
        match self {
            RetryPolicy::Immediate => 0,
            RetryPolicy::Fixed { delay_ms } => *delay_ms,
            RetryPolicy::Exponential {
                base_ms,
                factor,
                cap_ms,
                jitter,
            } => {
                let raw = (*base_ms as f64) * factor.powi((n - 1).min(1000) as i32);
                let capped = raw.min(*cap_ms as f64);
                let j = jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
                (capped * (1.0 - j)).round() as u64
            }
            RetryPolicy::List { delays_ms } => match delays_ms.len() {
                0 => 0,
                len => delays_ms[(n as usize - 1).min(len - 1)],
            },
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if let RetryPolicy::Exponential { factor, jitter, .. } = self {
            if !(factor.is_finite() && *factor >= 1.0) {
                return Err("exponential retry factor must be a finite number >= 1".into());
            }
            if !(0.0..=1.0).contains(jitter) {
                return Err("exponential retry jitter must be within 0.0..=1.0".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(RetryPolicy::Immediate.delay_ms(3, 0.5), 0);
        assert_eq!(RetryPolicy::Fixed { delay_ms: 250 }.delay_ms(7, 0.9), 250);
        let exp = RetryPolicy::Exponential {
            base_ms: 100,
            factor: 2.0,
            cap_ms: 1000,
            jitter: 0.0,
        };
        let got: Vec<u64> = (1..=6).map(|n| exp.delay_ms(n, 0.99)).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        let jit = RetryPolicy::Exponential {
            base_ms: 1000,
            factor: 2.0,
            cap_ms: 60_000,
            jitter: 0.5,
        };
        assert_eq!(jit.delay_ms(2, 0.0), 2000);
        assert_eq!(jit.delay_ms(2, 0.5), 1500);
        let list = RetryPolicy::List {
            delays_ms: vec![10, 20, 30],
        };
        let got: Vec<u64> = (1..=5).map(|n| list.delay_ms(n, 0.0)).collect();
        assert_eq!(got, vec![10, 20, 30, 30, 30]);
    }
}
