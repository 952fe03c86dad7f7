//! The host's public value types: what the broker passes in and gets back. Plain Rust, no
//! wasmtime types.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// Which world a plugin implements, i.e. which question it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Keep or drop a message (`world filter`).
    Filter,
    /// Rewrite a message (`world transform`).
    Transform,
    /// Decide where a message goes (`world router`).
    Router,
}

impl PluginKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Filter => "filter",
            PluginKind::Transform => "transform",
            PluginKind::Router => "router",
        }
    }

    /// The name of the world's single export.
    pub(crate) fn export(self) -> &'static str {
        match self {
            PluginKind::Filter => "filter",
            PluginKind::Transform => "transform",
            PluginKind::Router => "route",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

impl std::str::FromStr for PluginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "filter" => Ok(PluginKind::Filter),
            "transform" => Ok(PluginKind::Transform),
            "router" | "route" => Ok(PluginKind::Router),
            other => Err(format!(
                "unknown world {other:?}: expected filter, transform or router"
            )),
        }
    }
}

/// Where the message is in the broker when the plugin runs (WIT `route-context`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteContext {
    /// Exchange the message was published to; empty for the default exchange.
    pub exchange: String,
    pub routing_key: String,
    /// 0 on first routing.
    pub delivery_count: u32,
    /// Who produced the message: a connection name, `dead-letter`, `delay`, ...
    pub source: String,
}

/// A router's decision (WIT `verdict`).
#[derive(Debug, Clone, PartialEq)]
pub enum RouteVerdict {
    /// Deliver to each destination. An empty list behaves like [`RouteVerdict::Drop`].
    Deliver(Vec<Destination>),
    /// Discard the message, successfully.
    Drop,
    /// Dead-letter the message with this reason.
    DeadLetter { reason: String },
}

/// One place a routed message goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub target: Target,
    /// Deliver this message instead of the original. Boxed: most destinations have none, and an
    /// inline message would make every verdict's list several times larger to build and move.
    pub message: Option<Box<Message>>,
    /// Hold the message this long before it becomes visible.
    pub delay_ms: Option<u64>,
}

/// A queue, or an exchange plus routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Queue(String),
    Exchange { name: String, routing_key: String },
}

/// Per-plugin resource limits. Defaults are safe for untrusted plugins and large enough for the
/// Python and JavaScript toolchains (whose runtimes need tens of MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PluginLimits {
    /// Cap on each linear memory of an instance, in bytes. Default 128 MiB: componentize-js
    /// grows to ~90 MiB in long-lived instances, so less breaks JS plugins.
    pub max_memory_bytes: usize,
    /// Per-call deadline, enforced by epoch interruption (granularity: the host's epoch tick).
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Cap on what one call returns (replacement messages, names, reasons), in bytes.
    pub max_output_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            max_memory_bytes: 128 << 20,
            timeout: Duration::from_millis(100),
            max_output_bytes: 16 << 20,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A line a plugin logged through the `log` import, captured for a dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginLog {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    pub message: String,
}

/// A call's result and, when asked for, the lines the plugin logged while computing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged<T> {
    pub result: Result<T, super::PluginError>,
    /// Empty unless capture was asked for. Bounded: see `bindings::MAX_CAPTURED_LINES`.
    pub logs: Vec<PluginLog>,
}

/// Host-wide settings, fixed for the life of a [`super::PluginHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Limits for plugins deployed without their own.
    pub default_limits: PluginLimits,
    /// Epoch tick: the granularity of deadlines. A ticker thread advances the epoch this often.
    pub epoch_tick: Duration,
    /// Instances the pooling allocator reserves room for, across all plugins and versions
    /// (idle plus busy). Each reserves address space (not memory) for its linear memory.
    pub max_instances: u32,
    /// Idle instances kept per plugin version for reuse. Busy instances are not counted.
    pub max_idle_per_plugin: usize,
    /// Largest `max_memory_bytes` a plugin may ask for.
    pub memory_ceiling: usize,
    /// Call plugins directly on the caller's stack while they allow it (the fast path; see
    /// `ARCHITECTURE.md`, "Calls and limits"). `false` runs every call on a fiber.
    pub direct_calls: bool,
    /// Run the calls of a version that failed or computed too long on the penalty lane, a
    /// thread at the lowest CPU priority, until it runs clean again. `false` keeps them on the
    /// serving threads (only for comparison: see `benches/isolation.rs`).
    pub penalty_lane: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HostConfig {
            default_limits: PluginLimits::default(),
            epoch_tick: Duration::from_millis(5),
            max_instances: 256,
            max_idle_per_plugin: (2 * cores).max(4),
            memory_ceiling: 1 << 30,
            direct_calls: true,
            penalty_lane: true,
        }
    }
}
