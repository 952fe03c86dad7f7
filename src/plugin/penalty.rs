//! When a plugin version is sent to the penalty lane, and when it comes back.
//!
//! A version is **penalized** by one *costly* call: one that trapped, timed out, hit its memory
//! or output limit, or computed for longer than [`HEAVY`] (a small plugin's call takes
//! microseconds). Such calls cost the serving threads far more than a normal one (a timeout is
//! a whole deadline of CPU; a trap, a fresh instance), so one is evidence enough.
//!
//! A penalized version is **rehabilitated** after [`CLEAN_CALLS`] consecutive clean calls in the
//! lane: a plugin that trapped on one bad message goes back to the fast path, while one that
//! fails or spins on every message stays in the lane. A plugin-reported error (`err(...)`) is a
//! clean call: it is cheap, and the plugin meant it.
//!
//! Races between concurrent calls only shift the switch by a call; no lock is taken.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use super::stats::Outcome;

/// CPU a call may use and still count as clean. Five default epoch ticks: well above any
/// small plugin, and above the scheduling noise of a loaded machine.
pub(crate) const HEAVY: Duration = Duration::from_millis(25);

/// Consecutive clean calls in the lane that bring a version back to the serving path.
pub(crate) const CLEAN_CALLS: u32 = 64;

/// A change of lane, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Penalized,
    Rehabilitated,
}

/// The penalty state of one version.
#[derive(Debug, Default)]
pub(crate) struct Penalty {
    active: AtomicBool,
    clean: AtomicU32,
}

/// Whether a finished call was costly to the threads it ran on.
pub(crate) fn costly(outcome: Outcome, cpu: Duration) -> bool {
    match outcome {
        Outcome::Ok | Outcome::PluginError => cpu > HEAVY,
        Outcome::Trap | Outcome::Timeout | Outcome::MemoryLimit | Outcome::OutputRejected => true,
    }
}

impl Penalty {
    /// Whether this version's calls go to the penalty lane.
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Records a finished call (wherever it ran); says if the version changed lane.
    pub fn observe(&self, costly: bool) -> Option<Change> {
        if costly {
            self.clean.store(0, Relaxed);
            return (!self.active.swap(true, Relaxed)).then_some(Change::Penalized);
        }
        if !self.active() {
            return None;
        }
        if self.clean.fetch_add(1, Relaxed) + 1 < CLEAN_CALLS {
            return None;
        }
        self.clean.store(0, Relaxed);
        self.active
            .swap(false, Relaxed)
            .then_some(Change::Rehabilitated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_costly_call_penalizes_and_clean_calls_rehabilitate() {
        let p = Penalty::default();
        assert_eq!(p.observe(false), None);
        assert!(!p.active());
        assert_eq!(p.observe(true), Some(Change::Penalized));
        assert_eq!(p.observe(true), None, "already penalized");
        for _ in 1..CLEAN_CALLS {
            assert_eq!(p.observe(false), None);
        }
        assert!(p.active());
        assert_eq!(p.observe(false), Some(Change::Rehabilitated));
        assert!(!p.active());
    }

    #[test]
    fn a_costly_call_restarts_the_count() {
        let p = Penalty::default();
        p.observe(true);
        for _ in 0..CLEAN_CALLS - 1 {
            p.observe(false);
        }
        p.observe(true);
        for _ in 0..CLEAN_CALLS - 1 {
            p.observe(false);
        }
        assert!(p.active(), "the count restarted at the second costly call");
    }

    #[test]
    fn what_is_costly() {
        let quick = Duration::from_micros(50);
        assert!(!costly(Outcome::Ok, quick));
        assert!(!costly(Outcome::PluginError, quick));
        assert!(costly(Outcome::Ok, HEAVY * 2));
        for failure in [
            Outcome::Trap,
            Outcome::Timeout,
            Outcome::MemoryLimit,
            Outcome::OutputRejected,
        ] {
            assert!(costly(failure, quick), "{failure:?}");
        }
    }
}
