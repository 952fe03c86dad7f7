//! The end of a call: classify what happened, keep or drop the instance, count it, and let the
//! penalty state see it.

use std::time::Duration;

use wasmtime::Trap;

use super::LoadedPlugin;
use crate::message::Message;
use crate::plugin::bindings::wit;
use crate::plugin::marshal;
use crate::plugin::memo::Reads;
use crate::plugin::penalty::{costly, Change};
use crate::plugin::stats::Outcome;
use crate::plugin::types::PluginLog;
use crate::plugin::worker::{CallResult, Raw, Worker};
use crate::plugin::PluginError;

/// What a finished call cost: its wall-clock time (for latency stats) and its CPU time (for the
/// penalty state; zero for a direct call, whose budget keeps it far below `penalty::HEAVY`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cost {
    pub elapsed: Duration,
    pub cpu: Duration,
}

impl LoadedPlugin {
    pub(super) fn instantiate_error(
        &self,
        e: wasmtime::Error,
        store_hit_memory: bool,
        budget: Duration,
    ) -> PluginError {
        if store_hit_memory {
            return PluginError::MemoryLimit {
                plugin: self.name(),
                version: self.version(),
                limit: self.limits.max_memory_bytes,
            };
        }
        let cause = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            format!("start code ran for more than {budget:?}")
        } else {
            format!("{e:#}")
        };
        PluginError::Instantiate {
            plugin: self.name(),
            version: self.version(),
            cause,
        }
    }

    /// Returns the worker to its pool or drops it, classifies the outcome, records stats and
    /// the call's cost.
    pub(super) fn settle(
        &self,
        result: CallResult,
        mut worker: Worker,
        cost: Cost,
        msg: &Message,
        logs: Option<&mut Vec<PluginLog>>,
        reads: Option<&mut Reads>,
    ) -> Result<Raw, PluginError> {
        let data = worker.store.data_mut();
        if let (Some(out), Some(lines)) = (logs, data.captured.take()) {
            out.extend(lines);
        }
        if let Some(out) = reads {
            match data.take_reads() {
                Some(recorded) => *out = recorded,
                None => out.tainted = true,
            }
        }
        let (outcome, result) = self.classify(result, worker, msg);
        self.stats.record(outcome, cost.elapsed);
        self.observe(outcome, cost.cpu);
        result
    }

    fn classify(
        &self,
        result: CallResult,
        worker: Worker,
        msg: &Message,
    ) -> (Outcome, Result<Raw, PluginError>) {
        match result {
            Ok(answer) => {
                self.release(worker);
                self.judge(answer)
            }
            Err(e) => {
                // The instance is poisoned: `worker` is dropped here, never returned to the pool.
                let memory_hit = worker.store.data().limiter.hit;
                drop(worker);
                let (outcome, err) = if memory_hit {
                    (
                        Outcome::MemoryLimit,
                        PluginError::MemoryLimit {
                            plugin: self.name(),
                            version: self.version(),
                            limit: self.limits.max_memory_bytes,
                        },
                    )
                } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    (
                        Outcome::Timeout,
                        PluginError::Timeout {
                            plugin: self.name(),
                            version: self.version(),
                            limit: self.limits.timeout,
                        },
                    )
                } else {
                    (
                        Outcome::Trap,
                        PluginError::Trap {
                            plugin: self.name(),
                            version: self.version(),
                            cause: format!("{e:#}"),
                        },
                    )
                };
                tracing::warn!(plugin = %self.identity.name, version = %self.identity.version,
                    message_id = %msg.id, error = %err, "plugin call failed; instance discarded");
                (outcome, Err(err))
            }
        }
    }

    /// A call that ran to its end: the plugin's answer, held to the output limit, or the error it
    /// reported. Also judges each answer of a batch call.
    pub(super) fn judge(
        &self,
        answer: Result<Raw, wit::PluginError>,
    ) -> (Outcome, Result<Raw, PluginError>) {
        match answer {
            Ok(raw) => {
                let size = match &raw {
                    Raw::Filter(_) => 0,
                    Raw::Transform(m) => marshal::wit_message_size(m),
                    Raw::Router(v) => marshal::wit_verdict_size(v),
                };
                if size > self.limits.max_output_bytes {
                    let err = PluginError::OutputTooLarge {
                        plugin: self.name(),
                        version: self.version(),
                        size,
                        limit: self.limits.max_output_bytes,
                    };
                    return (Outcome::OutputRejected, Err(err));
                }
                (Outcome::Ok, Ok(raw))
            }
            Err(reported) => {
                let err = PluginError::PluginReported {
                    plugin: self.name(),
                    version: self.version(),
                    message: reported.message,
                };
                (Outcome::PluginError, Err(err))
            }
        }
    }

    /// Feeds a finished call to the penalty state (when the host has a lane).
    pub(super) fn observe(&self, outcome: Outcome, cpu: Duration) {
        if self.lane.is_none() {
            return;
        }
        let (plugin, version) = (&*self.identity.name, &*self.identity.version);
        match self.penalty.observe(costly(outcome, cpu)) {
            Some(Change::Penalized) => tracing::warn!(
                plugin,
                version,
                ?outcome,
                ?cpu,
                "costly plugin call: this version's calls move to the penalty lane"
            ),
            Some(Change::Rehabilitated) => tracing::info!(
                plugin,
                version,
                "plugin version ran clean in the penalty lane: back on the serving path"
            ),
            None => {}
        }
    }

    /// An answer that does not convert, from a call counted as `ok`: counted again as a plugin
    /// error.
    pub(super) fn invalid(&self, cause: String) -> PluginError {
        self.stats.ok_was_invalid();
        self.invalid_output(cause)
    }

    pub(super) fn invalid_output(&self, cause: String) -> PluginError {
        PluginError::InvalidOutput {
            plugin: self.name(),
            version: self.version(),
            cause,
        }
    }
}
