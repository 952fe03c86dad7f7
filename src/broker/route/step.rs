//! One plugin step of a routing pass: which version runs it, how its answer is recorded, and
//! what a failure turns into.
//!
//! Every step records exactly one [`Step`] naming the version that answered (or was due to),
//! and the breaker, the step and the lineage stamp all name that one version even across a hot
//! swap. A step answered before the pass (a batch call, [`Answered`]) goes through the same
//! [`admit`](Router::admit) and [`settle`](Router::settle) as one that calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::describe::Describe;
use super::{mark_origin, Router};
use crate::broker::{Outcome, Step};
use crate::message::Message;
use crate::plugin::{Logged, PluginError, PluginLog, Serving};
use crate::routing::Exchange;

/// A plugin's answer obtained before the routing pass: which version gave it, and the share of
/// the batch call's time it stands for.
pub(in crate::broker) struct Answered<T> {
    pub serving: Serving,
    pub result: Result<T, PluginError>,
    pub elapsed: Duration,
}

/// What a plugin call came to, once failures are handled.
pub(super) enum Called<T> {
    /// The plugin's answer, and the version that gave it (whose lineage entry goes on the
    /// message).
    Ok(T, Serving),
    /// The failure policy or breaker already disposed of the message.
    Handled,
}

/// Where a plugin step runs: what its record and the exchange's failure policy need.
#[derive(Clone, Copy)]
pub(super) struct At<'s> {
    pub ex: &'s Exchange,
    /// `filter`, `transform`, `router` or `binding-filter`.
    pub role: &'static str,
    pub key: &'s str,
    pub message: &'s Message,
}

impl Router<'_> {
    /// Runs `call` on the serving version of `plugin` unless its breaker is open, records the
    /// step, and applies the exchange's failure policy when it fails. The breaker, the step and
    /// the returned version all name the one version `call` ran on, even across a hot swap.
    pub(super) async fn call<T: Describe>(
        &mut self,
        at: At<'_>,
        plugin: &str,
        call: impl AsyncFnOnce(&Serving) -> Logged<T>,
    ) -> Called<T> {
        let Some(serving) = self.admit(at, plugin, self.plugins.serving(plugin)) else {
            return Called::Handled;
        };
        let start = Instant::now();
        let Logged { result, logs } = call(&serving).await;
        self.settle(at, serving, result, start.elapsed(), logs)
    }

    /// The version a step may run on: `serving`, unless there is none (the failure policy
    /// applies) or its breaker is open (the message is quarantined). `None`: handled.
    pub(super) fn admit(
        &mut self,
        at: At<'_>,
        plugin: &str,
        serving: Result<Serving, PluginError>,
    ) -> Option<Serving> {
        let serving = match serving {
            Ok(p) => p,
            Err(err) => {
                let (name, version) = (Arc::from(plugin), Arc::from(""));
                self.failed(at, &err, |o| {
                    step(at, name, version, o, Duration::ZERO, Vec::new())
                });
                return None;
            }
        };
        let version = serving.version();
        if !self.breakers.is_open(plugin, version) {
            return Some(serving);
        }
        let (name, version) = (serving.name().clone(), version.clone());
        let reason = format!("plugin {plugin}@{version} is quarantined after repeated failures");
        let quarantined = step(
            at,
            name,
            version,
            Outcome::Quarantined,
            Duration::ZERO,
            Vec::new(),
        );
        self.decision.steps.push(quarantined);
        let mut m = at.message.clone();
        mark_origin(&mut m, &at.ex.name, at.key, &reason);
        let q = self.special.quarantine.clone();
        self.push(&q, m, None, Some(reason));
        None
    }

    /// A step's answer from `serving`, made by a call or by a batch call before the pass:
    /// recorded, counted by the breaker, and on failure handed to the failure policy.
    pub(super) fn settle<T: Describe>(
        &mut self,
        at: At<'_>,
        serving: Serving,
        result: Result<T, PluginError>,
        elapsed: Duration,
        logs: Vec<PluginLog>,
    ) -> Called<T> {
        let (name, version) = (serving.name().clone(), serving.version().clone());
        let plugin = &*name;
        match result {
            Ok(value) => {
                if !self.dry_run {
                    self.breakers.record_success(plugin, &version);
                }
                let done = step(at, name, version, value.describe(), elapsed, logs);
                self.decision.steps.push(done);
                Called::Ok(value, serving)
            }
            Err(err) => {
                if !self.dry_run && self.breakers.record_failure(plugin, &version) {
                    tracing::warn!(
                        plugin,
                        version = &*version,
                        "circuit breaker opened: plugin version quarantined"
                    );
                }
                self.failed(at, &err, |o| step(at, name, version, o, elapsed, logs));
                Called::Handled
            }
        }
    }

    /// A plugin call that failed (or could not be made): its step, then the exchange's
    /// failure policy, both naming the same error.
    fn failed(&mut self, at: At<'_>, err: &PluginError, step: impl FnOnce(Outcome) -> Step) {
        let reason = err.to_string();
        self.decision.steps.push(step(Outcome::Error {
            kind: err.kind(),
            message: reason.clone(),
        }));
        self.fail(at.ex, at.key, at.message.clone(), reason);
    }
}

/// The record of one plugin step at `at`, by version `version` of `plugin`.
fn step(
    at: At<'_>,
    plugin: Arc<str>,
    version: Arc<str>,
    outcome: Outcome,
    elapsed: Duration,
    logs: Vec<PluginLog>,
) -> Step {
    Step {
        exchange: at.ex.name.clone(),
        plugin,
        version,
        role: at.role,
        outcome,
        elapsed,
        logs,
    }
}
