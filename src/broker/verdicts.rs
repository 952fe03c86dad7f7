//! Per plugin *version*: calls made while routing committed publishes (dry runs excluded),
//! what each answered, and how long it took — for the admin API. The plugin host's own counters
//! are per plugin (all versions together); the broker sees each step's version, so it can tell
//! a new version's behaviour apart from the old one's during and after a hot reload.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use super::Decision;
use crate::plugin::LATENCY_BUCKETS;

/// One version's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VersionStats {
    pub calls: u64,
    /// Verdict class (`deliver`, `drop`, `keep`, `rewrite`, `dead-letter`, `quarantined`,
    /// `error:<kind>` such as `error:trap` or `error:timeout`) → count.
    pub verdicts: BTreeMap<String, u64>,
    /// Bucket `i`: calls under `2^i` µs (as in the plugin host's histogram).
    pub latency_buckets: [u64; LATENCY_BUCKETS],
}

/// version → its record.
pub type VersionVerdicts = BTreeMap<String, VersionStats>;

#[derive(Debug, Default)]
pub struct VerdictCounts {
    by_plugin: Mutex<BTreeMap<String, VersionVerdicts>>,
}

/// `map[key]`, inserted with its default value if absent; allocates the key only then.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn bucket(elapsed: Duration) -> usize {
    let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
    (64 - micros.leading_zeros() as usize).min(LATENCY_BUCKETS - 1)
}

impl VerdictCounts {
    pub fn record(&self, decision: &Decision) {
        self.record_all(std::slice::from_ref(decision));
    }

    /// Every step of `decisions`, under one lock. This runs on every publish: a version is
    /// looked up once per run of steps it took in a row (a batch routed by one plugin is one
    /// run), and its key allocated on its first call only.
    pub fn record_all<'d>(&self, decisions: impl IntoIterator<Item = &'d Decision>) {
        let mut steps = decisions.into_iter().flat_map(|d| &d.steps).peekable();
        if steps.peek().is_none() {
            return;
        }
        let mut map = self.by_plugin.lock();
        while let Some(first) = steps.next() {
            let version = if first.version.is_empty() {
                "unknown"
            } else {
                &first.version
            };
            let stats = entry(entry(&mut map, &first.plugin), version);
            // Verdict classes are counted per run of one class, then added: a batch's steps
            // nearly all answer alike.
            let (mut class, mut alike) = (first.outcome.class(), 0);
            let mut step = first;
            loop {
                stats.calls += 1;
                stats.latency_buckets[bucket(step.elapsed)] += 1;
                let this = step.outcome.class();
                if this != class {
                    *entry(&mut stats.verdicts, &class) += alike;
                    (class, alike) = (this, 0);
                }
                alike += 1;
                // The same version object: the same plugin and version, no comparing needed.
                match steps.next_if(|s| {
                    Arc::ptr_eq(&s.plugin, &first.plugin) && Arc::ptr_eq(&s.version, &first.version)
                }) {
                    Some(next) => step = next,
                    None => break,
                }
            }
            *entry(&mut stats.verdicts, &class) += alike;
        }
    }

    pub fn get(&self, plugin: &str) -> VersionVerdicts {
        self.by_plugin
            .lock()
            .get(plugin)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::VerdictCounts;
    use crate::broker::{Decision, Outcome, Step};

    fn decision(version: &Arc<str>, outcomes: Vec<Outcome>) -> Decision {
        let steps = outcomes
            .into_iter()
            .map(|outcome| Step {
                exchange: "x".into(),
                plugin: "p".into(),
                version: version.clone(),
                role: "router",
                outcome,
                elapsed: Duration::from_micros(3),
                logs: Vec::new(),
            })
            .collect();
        Decision {
            steps,
            ..Decision::default()
        }
    }

    /// A batch's steps: runs of one version and of one verdict class, each counted in full.
    #[test]
    fn record_all_counts_every_step_of_every_decision() {
        let (v1, v2): (Arc<str>, Arc<str>) = ("v1".into(), "v2".into());
        let deliver = || Outcome::Deliver { destinations: 1 };
        let dead = || Outcome::DeadLetter { reason: "r".into() };
        let trap = || Outcome::Error {
            kind: "trap",
            message: "m".into(),
        };
        let decisions = [
            decision(&v1, vec![deliver(), deliver()]),
            decision(&v1, vec![dead(), deliver()]),
            decision(&v2, vec![trap()]),
            decision(&v1, vec![deliver()]),
        ];
        let counts = VerdictCounts::default();
        counts.record_all(&decisions);
        counts.record(&decisions[1]);
        let by_version = counts.get("p");
        let classes = |v: &str| {
            let stats = &by_version[v];
            let verdicts: Vec<_> = stats
                .verdicts
                .iter()
                .map(|(k, n)| (k.as_str(), *n))
                .collect();
            (stats.calls, verdicts, stats.latency_buckets[2])
        };
        assert_eq!(
            classes("v1"),
            (7, vec![("dead-letter", 2), ("deliver", 5)], 7)
        );
        assert_eq!(classes("v2"), (1, vec![("error:trap", 1)], 1));
    }

    #[test]
    fn buckets() {
        assert_eq!(super::bucket(Duration::from_nanos(500)), 0);
        assert_eq!(super::bucket(Duration::from_micros(3)), 2);
        assert_eq!(
            super::bucket(Duration::from_secs(100)),
            super::LATENCY_BUCKETS - 1
        );
    }
}
