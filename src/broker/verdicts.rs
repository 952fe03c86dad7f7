//! Counts of what each plugin version answered while routing committed publishes (dry runs
//! excluded), for the admin API: the plugin host counts calls and failures, the broker knows
//! what the answers meant.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::Decision;

/// version → verdict class (`deliver`, `drop`, `keep`, `rewrite`, `dead-letter`, `error`,
/// `quarantined`) → count.
pub type VersionVerdicts = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, Default)]
pub struct VerdictCounts {
    by_plugin: Mutex<BTreeMap<String, VersionVerdicts>>,
}

/// The class of a step outcome: its first word (`deliver to 2` → `deliver`).
fn class(outcome: &str) -> &str {
    let word = outcome.split_whitespace().next().unwrap_or("none");
    word.trim_end_matches(':')
}

impl VerdictCounts {
    pub fn record(&self, decision: &Decision) {
        if decision.steps.is_empty() {
            return;
        }
        let mut map = self.by_plugin.lock();
        for step in &decision.steps {
            let version = if step.version.is_empty() {
                "unknown"
            } else {
                &step.version
            };
            *map.entry(step.plugin.clone())
                .or_default()
                .entry(version.to_owned())
                .or_default()
                .entry(class(&step.outcome).to_owned())
                .or_default() += 1;
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
    #[test]
    fn classes_are_first_words() {
        assert_eq!(super::class("deliver to 2"), "deliver");
        assert_eq!(super::class("dead-letter: bad json"), "dead-letter");
        assert_eq!(super::class("error (trap): boom"), "error");
        assert_eq!(super::class(""), "none");
    }
}
