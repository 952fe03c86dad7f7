//! The plugin host: runs user-supplied WebAssembly components that filter, transform and route
//! messages, under limits, with a persisted registry and hot reload.
//!
//! The contract is the WIT package `switchyard:plugin@0.1.0` in `wit/plugin.wit`: five worlds,
//! `filter`, `transform`, `router`, `view-router` (a router that reads the message lazily) and
//! `batch-router` (the same for many messages per call).
//! Nothing in this module's public API mentions wasmtime: the broker sees [`PluginHost`], plain
//! value types and [`PluginError`].
//!
//! Files, one concern each:
//! - `types`: public value types (kinds, verdicts, limits, host config);
//! - `error`: [`PluginError`];
//! - `bindings`: generated WIT bindings and the host imports (`log`, `config`, `clock`, WASI);
//! - `engine`: engine configuration and the epoch ticker;
//! - `limiter`: the memory cap;
//! - `marshal`: `Message` ⇄ WIT; `view`: the messages a `view-router` or `batch-router` reads
//!   lazily;
//! - `compile`: bytes → type-checked pre-instance; `cache`: compiled artifacts on disk;
//! - `instance`: a loaded version and its pools of warm instances (`instance/settle`: the end
//!   of a call; `instance/calls`: filter, transform, route; `instance/batch`: many messages in
//!   one router call); `worker`: one instance and the
//!   two ways to call it (direct, fiber);
//!   `nonblocking`: WASI for direct calls; `cpu`: a fiber call's CPU time;
//! - `memo`: the verdict cache of a deterministic `view-router` version;
//! - `penalty`: when a version's calls move to the penalty lane and back; `lane`: that lane,
//!   a thread at the lowest CPU priority;
//! - `registry`: persisted names, histories and blobs; `host`: [`PluginHost`]; `serving`: a
//!   handle on one serving version; `info`: what `list`/`show`/stats report;
//! - `watch`: hot reload from a directory; `harness`: the offline JSONL runner;
//! - `fuzzing`: the `plugin_verdict` fuzz target's entry point (results as hostile input).
//!
//! See `ARCHITECTURE.md`, "Plugin host", for the invariants.

mod bindings;
mod cache;
mod compile;
mod cpu;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod harness;
mod host;
mod info;
mod instance;
mod lane;
mod lifted;
mod limiter;
mod marshal;
mod memo;
mod nonblocking;
mod penalty;
mod registry;
mod serving;
mod stats;
mod types;
mod view;
mod watch;
mod worker;

pub use error::PluginError;
pub use host::{DeployOptions, PluginHost};
pub use info::{HostStats, PluginInfo};
pub use memo::{VerdictCacheInfo, DIRECTIVE as VERDICT_CACHE};
pub use registry::VersionInfo;
pub use serving::Serving;
pub use stats::{StatsSnapshot, LATENCY_BUCKETS};
pub use types::{
    Destination, HostConfig, Logged, PluginKind, PluginLimits, PluginLog, RouteContext,
    RouteVerdict, Target,
};
pub use view::Routed;
pub use watch::{dir_plugins, DirPlugin, DirWatcher};
