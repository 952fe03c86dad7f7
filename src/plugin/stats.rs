//! Per-plugin counters for the admin API. Lock-free: updated on every call.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Latency histogram buckets: bucket `i` counts calls that took less than `2^i` µs; the last
/// bucket takes everything slower.
pub const LATENCY_BUCKETS: usize = 20;

/// Live counters of one plugin (all versions together).
#[derive(Debug, Default)]
pub(crate) struct PluginStats {
    calls: AtomicU64,
    ok: AtomicU64,
    plugin_errors: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    memory_limits: AtomicU64,
    output_rejected: AtomicU64,
    instantiations: AtomicU64,
    lane_calls: AtomicU64,
    total_ns: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

/// What happened in one call, for counting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Ok,
    PluginError,
    Trap,
    Timeout,
    MemoryLimit,
    OutputRejected,
}

impl PluginStats {
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        self.record_many(outcome, 1, elapsed);
    }

    /// `n` calls with the same outcome, each taking `each` (the messages of a batch call).
    pub fn record_many(&self, outcome: Outcome, n: u64, each: Duration) {
        if n == 0 {
            return;
        }
        self.calls.fetch_add(n, Relaxed);
        let counter = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::PluginError => &self.plugin_errors,
            Outcome::Trap => &self.traps,
            Outcome::Timeout => &self.timeouts,
            Outcome::MemoryLimit => &self.memory_limits,
            Outcome::OutputRejected => &self.output_rejected,
        };
        counter.fetch_add(n, Relaxed);
        let ns = each.as_nanos() as u64;
        self.total_ns.fetch_add(ns * n, Relaxed);
        let micros = ns / 1000;
        let bucket = (64 - micros.leading_zeros() as usize).min(LATENCY_BUCKETS - 1);
        self.buckets[bucket].fetch_add(n, Relaxed);
    }

    /// A call recorded as `Ok` whose result then failed conversion (e.g. an empty message id):
    /// move it to `plugin_errors`.
    pub fn ok_was_invalid(&self) {
        self.ok.fetch_sub(1, Relaxed);
        self.plugin_errors.fetch_add(1, Relaxed);
    }

    pub fn instantiated(&self) {
        self.instantiations.fetch_add(1, Relaxed);
    }

    /// A call that ran in the penalty lane (also counted by `record`).
    pub fn lane_call(&self) {
        self.lane_calls.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.load(Relaxed),
            ok: self.ok.load(Relaxed),
            plugin_errors: self.plugin_errors.load(Relaxed),
            traps: self.traps.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            memory_limits: self.memory_limits.load(Relaxed),
            output_rejected: self.output_rejected.load(Relaxed),
            instantiations: self.instantiations.load(Relaxed),
            lane_calls: self.lane_calls.load(Relaxed),
            total_ns: self.total_ns.load(Relaxed),
            latency_buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
        }
    }
}

/// A copy of a plugin's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub ok: u64,
    /// Calls where the plugin returned `err(...)` or an invalid result.
    pub plugin_errors: u64,
    pub traps: u64,
    pub timeouts: u64,
    pub memory_limits: u64,
    /// Calls whose result exceeded `max_output_bytes`.
    pub output_rejected: u64,
    /// Fresh instances created (first use, concurrency growth, after traps).
    pub instantiations: u64,
    /// Calls that ran in the penalty lane, at the lowest CPU priority, because the version had
    /// failed or computed too long (see `ARCHITECTURE.md`, "Calls and limits").
    pub lane_calls: u64,
    /// Sum of call latencies; divide by `calls` for the mean.
    pub total_ns: u64,
    /// Bucket `i`: calls under `2^i` µs (bucket 0: under 1 µs); the last bucket is open-ended.
    pub latency_buckets: [u64; LATENCY_BUCKETS],
}
