//! Plugin host tests: example plugins, faults, registry, hot reload, CLI.

mod batch;
mod cli;
mod direct;
mod examples;
mod faults;
mod fuzz;
mod lane;
mod registry;
mod reload;
mod sandbox;
mod verdict_cache;
mod view;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use switchyard::plugin::{
    DeployOptions, HostConfig, PluginHost, PluginLimits, RouteVerdict, Target,
};

/// A host with a small instance pool (tests run many hosts in one process) and a fast tick.
///
/// The default deadline is raised to 5 s: deadlines are wall-clock, and the tests run ~20 hosts
/// on 2 cores next to Python and JS builds, so a trivial call can be descheduled for longer than
/// the production default of 100 ms. Tests of the deadline itself set their own.
pub fn host_config() -> HostConfig {
    HostConfig {
        max_instances: 48,
        epoch_tick: Duration::from_millis(2),
        default_limits: PluginLimits {
            timeout: Duration::from_secs(5),
            ..PluginLimits::default()
        },
        ..HostConfig::default()
    }
}

pub fn open_host(dir: &Path) -> PluginHost {
    PluginHost::open(dir, host_config()).expect("open host")
}

pub fn memory_host() -> PluginHost {
    PluginHost::in_memory(host_config()).expect("in-memory host")
}

pub fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn with_config(pairs: &[(&str, &str)]) -> DeployOptions {
    DeployOptions {
        config: config(pairs),
        ..DeployOptions::default()
    }
}

pub fn with_limits(limits: PluginLimits) -> DeployOptions {
    DeployOptions {
        limits: Some(limits),
        ..DeployOptions::default()
    }
}

/// The queue names of a `Deliver` verdict, in order; panics on other verdicts.
pub fn queues(verdict: &RouteVerdict) -> Vec<String> {
    match verdict {
        RouteVerdict::Deliver(list) => list
            .iter()
            .map(|d| match &d.target {
                Target::Queue(q) => q.clone(),
                other => panic!("expected a queue, got {other:?}"),
            })
            .collect(),
        other => panic!("expected deliver, got {other:?}"),
    }
}
