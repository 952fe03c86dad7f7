//! Generated bindings for the three worlds, and the host side of the imports (`log`, `config`,
//! `clock`) plus the empty WASI context.
//!
//! `router` generates the shared interfaces; `filter` and `transform` reuse them through `with`,
//! so a `types::Message` is one Rust type whichever world a plugin implements.
//!
//! Exports are called asynchronously (on a wasmtime fiber) and WASI is linked with its async
//! implementation: a call then runs on the async task that needs it — no hop to another thread —
//! and a guest that computes for long yields back to the executor at every epoch tick, while a
//! guest blocked in WASI (a sleep, a poll) waits on a timer instead of holding a thread. Our own
//! imports (`log`, `config`, `clock`) never block and stay synchronous.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limiter::MemoryLimiter;

pub(crate) mod router {
    wasmtime::component::bindgen!({ world: "router", path: "wit", exports: { default: async } });
}

pub(crate) mod filter {
    wasmtime::component::bindgen!({
        world: "filter",
        path: "wit",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::router::switchyard::plugin::types,
            "switchyard:plugin/log": super::router::switchyard::plugin::log,
            "switchyard:plugin/config": super::router::switchyard::plugin::config,
            "switchyard:plugin/clock": super::router::switchyard::plugin::clock,
        },
    });
}

pub(crate) mod transform {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "wit",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::router::switchyard::plugin::types,
            "switchyard:plugin/log": super::router::switchyard::plugin::log,
            "switchyard:plugin/config": super::router::switchyard::plugin::config,
            "switchyard:plugin/clock": super::router::switchyard::plugin::clock,
        },
    });
}

pub(crate) use router::switchyard::plugin::types as wit;
use router::switchyard::plugin::{clock, config, log};

/// Who is running: shared by every instance of one deployed version.
#[derive(Debug)]
pub(crate) struct Identity {
    pub name: Arc<str>,
    pub version: Arc<str>,
    pub config: BTreeMap<String, String>,
}

/// The data of every store. One store per instance; a store is reused across calls.
pub(crate) struct StoreState {
    pub identity: Arc<Identity>,
    /// Id of the message being processed, for log lines.
    pub message_id: String,
    /// Epoch ticks the current call may still run before it is interrupted. Counted only while
    /// the guest runs (each tick it observes costs one), so a call that waits for a loaded
    /// executor is not charged for the wait.
    pub ticks_left: u64,
    pub limiter: MemoryLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl StoreState {
    pub fn new(identity: Arc<Identity>, max_memory_bytes: usize) -> Self {
        StoreState {
            identity,
            message_id: String::new(),
            ticks_left: 0,
            limiter: MemoryLimiter::new(max_memory_bytes),
            // Empty: no preopens, environment, arguments or network. Every guest toolchain
            // imports WASI, so it must be linked, but it grants nothing.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for StoreState {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = &*self.identity.name;
        let version = &*self.identity.version;
        let id = &self.message_id;
        match level {
            log::Level::Trace => tracing::trace!(plugin, version, message_id = %id, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, version, message_id = %id, "{message}"),
            log::Level::Info => tracing::info!(plugin, version, message_id = %id, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, version, message_id = %id, "{message}"),
            log::Level::Error => tracing::error!(plugin, version, message_id = %id, "{message}"),
        }
    }
}

impl config::Host for StoreState {
    fn get(&mut self, key: String) -> Option<String> {
        self.identity.config.get(&key).cloned()
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.identity
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl clock::Host for StoreState {
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

impl wit::Host for StoreState {}

/// A linker with WASI (empty context) and our three host interfaces. The imports are the same
/// for every world, so one linker serves all.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
) -> wasmtime::Result<wasmtime::component::Linker<StoreState>> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    router::Router::add_to_linker::<_, wasmtime::component::HasSelf<StoreState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}
