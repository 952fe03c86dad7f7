//! Generated bindings for the five worlds, and the host side of the imports (`log`, `config`,
//! `clock`) plus the empty WASI context.
//!
//! `router` generates the shared interfaces; the other worlds reuse them
//! through `with`, so a `types::Message` is one Rust type whichever world a plugin implements.
//!
//! Exports are generated async (fiber calls, with WASI linked async); direct calls type the same
//! exports themselves (`worker.rs`) against a second linker whose WASI cannot block
//! (`nonblocking.rs`). Our own imports (`log`, `config`, `clock`) never block, so both linkers
//! share them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::cpu::CpuMeter;
use super::limiter::MemoryLimiter;
use super::memo::Reads;
use super::nonblocking;
use super::types::PluginLog;
use super::view::View;

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

/// `router`'s reading of the message, lent as a resource instead of copied as a record.
pub(crate) mod view_router {
    wasmtime::component::bindgen!({
        world: "view-router",
        path: "wit",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::router::switchyard::plugin::types,
            "switchyard:plugin/log": super::router::switchyard::plugin::log,
            "switchyard:plugin/config": super::router::switchyard::plugin::config,
            "switchyard:plugin/clock": super::router::switchyard::plugin::clock,
            "switchyard:plugin/view.message-view": super::super::view::MessageView,
        },
    });
}

/// `view-router` for many messages per call: the messages are read by index through the `batch`
/// import instead of through a handle each.
pub(crate) mod batch_router {
    wasmtime::component::bindgen!({
        world: "batch-router",
        path: "wit",
        exports: { default: async },
        imports: { "switchyard:plugin/batch": trappable },
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
    /// `name@version`, as routing stamps it on every message this version routes or rewrites.
    pub lineage: Arc<str>,
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
    /// A fiber call's deadline in CPU time, charged by `meter`; `None` for direct calls and
    /// instantiation, which count `ticks_left`.
    pub cpu_limit: Option<Duration>,
    pub meter: Arc<CpuMeter>,
    pub limiter: MemoryLimiter,
    /// Log lines of the current call, when its caller asked for them (a dry run).
    pub captured: Option<Vec<PluginLog>>,
    /// The messages a `view-router` or `batch-router` call is reading; `None` between calls
    /// (see `view.rs`).
    pub view: Option<View>,
    /// What the current call reads, when its version caches verdicts (see `memo.rs`).
    pub reads: Option<Reads>,
    /// Set when the guest reads a WASI clock; [`StoreState::take_reads`] turns it into taint.
    clock_read: Arc<AtomicBool>,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl StoreState {
    pub fn new(identity: Arc<Identity>, max_memory_bytes: usize) -> Self {
        let clock_read = Arc::new(AtomicBool::new(false));
        StoreState {
            identity,
            message_id: String::new(),
            ticks_left: 0,
            cpu_limit: None,
            meter: Arc::default(),
            limiter: MemoryLimiter::new(max_memory_bytes),
            captured: None,
            view: None,
            reads: None,
            // Empty: no preopens, environment, arguments or network. Every guest toolchain
            // imports WASI, so it must be linked, but it grants nothing. Its clocks are the
            // host's, watched so that a call that reads one is not cached.
            wasi: WasiCtx::builder()
                .wall_clock(Watched(
                    wasmtime_wasi::clocks::wall_clock(),
                    clock_read.clone(),
                ))
                .monotonic_clock(Watched(
                    wasmtime_wasi::clocks::monotonic_clock(),
                    clock_read.clone(),
                ))
                .build(),
            clock_read,
            table: ResourceTable::new(),
        }
    }

    /// Starts recording the next call's reads (or not).
    pub fn record_reads(&mut self, record: bool) {
        // The flag is read only by `take_reads`, which needs `reads`: reset it only then, and
        // keep an atomic store off every other call.
        if record {
            self.clock_read.store(false, Relaxed);
        }
        self.reads = record.then(Reads::default);
    }

    /// The reads recorded since [`record_reads`](Self::record_reads), tainted if the guest read
    /// a WASI clock meanwhile.
    pub fn take_reads(&mut self) -> Option<Reads> {
        let mut reads = self.reads.take()?;
        reads.tainted |= self.clock_read.load(Relaxed);
        Some(reads)
    }

    /// The current call did something a cached verdict would not repeat.
    fn taint(&mut self) {
        if let Some(reads) = &mut self.reads {
            reads.tainted = true;
        }
    }
}

/// A WASI clock that notes it was read.
struct Watched<C>(C, Arc<AtomicBool>);

impl HostWallClock for Watched<Box<dyn HostWallClock + Send>> {
    fn resolution(&self) -> Duration {
        self.0.resolution()
    }

    fn now(&self) -> Duration {
        self.1.store(true, Relaxed);
        self.0.now()
    }
}

impl HostMonotonicClock for Watched<Box<dyn HostMonotonicClock + Send>> {
    fn resolution(&self) -> u64 {
        self.0.resolution()
    }

    fn now(&self) -> u64 {
        self.1.store(true, Relaxed);
        self.0.now()
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

/// A capture keeps at most this many lines of a call, each cut to [`MAX_CAPTURED_LINE`] bytes,
/// so a dry run of a chatty plugin stays small. Tracing still gets every line.
pub(crate) const MAX_CAPTURED_LINES: usize = 100;
pub(crate) const MAX_CAPTURED_LINE: usize = 4096;

impl log::Host for StoreState {
    fn log(&mut self, level: log::Level, message: String) {
        self.taint();
        if let Some(lines) = &mut self.captured {
            if lines.len() < MAX_CAPTURED_LINES {
                let mut text = message.clone();
                if text.len() > MAX_CAPTURED_LINE {
                    let mut cut = MAX_CAPTURED_LINE;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                let level = match level {
                    log::Level::Trace => "trace",
                    log::Level::Debug => "debug",
                    log::Level::Info => "info",
                    log::Level::Warn => "warn",
                    log::Level::Error => "error",
                };
                lines.push(PluginLog {
                    level,
                    message: text,
                });
            }
        }
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
        self.taint();
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
    router::Router::add_to_linker::<_, HasSelf<StoreState>>(linker, |s| s)?;
    view_router::switchyard::plugin::view::add_to_linker::<_, HasSelf<StoreState>>(linker, |s| s)?;
    batch_router::switchyard::plugin::batch::add_to_linker::<_, HasSelf<StoreState>>(linker, |s| s)
}
