//! Generated bindings for the three worlds, and the host side of the imports (`log`, `config`,
//! `clock`) plus the empty WASI context.
//!
//! `router` generates the shared interfaces; `filter` and `transform` reuse them through `with`,
//! so a `types::Message` is one Rust type whichever world a plugin implements.
//!
//! Exports are generated async (fiber calls, with WASI linked async); direct calls type the same
//! exports themselves (`worker.rs`) against a second linker whose WASI cannot block
//! (`nonblocking.rs`). Our own imports (`log`, `config`, `clock`) never block, so both linkers
//! share them.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limiter::MemoryLimiter;
use super::nonblocking;

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

/// The two linkers, with the same imports: WASI (empty context) and our three host
/// interfaces, which are the same for every world.
pub(crate) struct Linkers {
    /// WASI linked async, for calls on a fiber.
    pub fiber: Linker<StoreState>,
    /// WASI linked sync without its blocking functions, for direct calls.
    pub direct: Linker<StoreState>,
}

impl Linkers {
    pub fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Linkers> {
        let mut fiber = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut fiber)?;
        add_host_interfaces(&mut fiber)?;
        let mut direct = Linker::new(engine);
        nonblocking::add_to_linker(&mut direct)?;
        add_host_interfaces(&mut direct)?;
        Ok(Linkers { fiber, direct })
    }
}

fn add_host_interfaces(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    router::Router::add_to_linker::<_, HasSelf<StoreState>>(linker, |s| s)
}
