//! Circuit breakers: quarantine a plugin version that keeps failing.
//!
//! Why: a plugin that fails every call would otherwise dead-letter the whole stream while still
//! costing its deadline per message. After `threshold` consecutive failures of one version, the
//! breaker opens: messages that would call it are parked in the quarantine queue without calling
//! it. A new version (deploy or rollback) is a new key, so it starts closed; parked messages are
//! released by [`crate::broker::Broker::release_quarantine`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Consecutive-failure counters per (plugin, version).
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    failures: Mutex<HashMap<(String, String), u32>>,
    /// `failures.len()`, readable without the lock: every plugin call on every publish asks,
    /// and when nothing is failing (the common case) the answer needs no lock at all. Written
    /// under the lock; a stale read can only delay a breaker by the call in flight.
    tracked: AtomicUsize,
}

impl Breakers {
    pub fn new(threshold: u32) -> Self {
        Breakers {
            threshold: threshold.max(1),
            failures: Mutex::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
        }
    }

    /// Whether calls to this version are currently refused.
    pub fn is_open(&self, plugin: &str, version: &str) -> bool {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let map = self.failures.lock();
        map.get(&(plugin.to_owned(), version.to_owned()))
            .is_some_and(|n| *n >= self.threshold)
    }

    pub fn record_success(&self, plugin: &str, version: &str) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut map = self.failures.lock();
        if map
            .remove(&(plugin.to_owned(), version.to_owned()))
            .is_some()
        {
            self.tracked.store(map.len(), Ordering::Relaxed);
        }
    }

    /// Count a failure; returns `true` when this failure opened the breaker.
    pub fn record_failure(&self, plugin: &str, version: &str) -> bool {
        let mut map = self.failures.lock();
        let n = map
            .entry((plugin.to_owned(), version.to_owned()))
            .or_insert(0);
        *n += 1;
        let opened = *n == self.threshold;
        self.tracked.store(map.len(), Ordering::Relaxed);
        opened
    }

    /// Versions whose breaker is open, for the admin API.
    pub fn open_versions(&self) -> Vec<(String, String)> {
        self.failures
            .lock()
            .iter()
            .filter(|(_, n)| **n >= self.threshold)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Close every breaker of a plugin (after a fix was deployed or rolled back).
    pub fn reset(&self, plugin: &str) {
        let mut map = self.failures.lock();
        map.retain(|(p, _), _| p != plugin);
        self.tracked.store(map.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_and_success_resets() {
        let b = Breakers::new(3);
        assert!(!b.record_failure("p", "v1"));
        assert!(!b.record_failure("p", "v1"));
        b.record_success("p", "v1");
        assert!(!b.record_failure("p", "v1"));
        assert!(!b.record_failure("p", "v1"));
        assert!(b.record_failure("p", "v1"));
        assert!(b.is_open("p", "v1"));
        assert!(!b.is_open("p", "v2"), "a new version starts closed");
        b.reset("p");
        assert!(!b.is_open("p", "v1"));
    }
}
