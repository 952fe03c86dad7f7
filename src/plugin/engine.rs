//! The wasmtime engine: configuration and the epoch ticker.
//!
//! - **Pooling allocator**: instantiation reuses pre-reserved slots (~7 µs for a Rust plugin), so
//!   a trap costs one fresh instance, not an mmap storm.
//! - **Epoch interruption** for deadlines (~8–10% per call; fuel costs more). A ticker thread
//!   bumps the epoch every `epoch_tick`; each call gets a deadline of enough ticks.
//! - **Sequential compilation** (`parallel_compilation(false)`): wasmtime would otherwise use
//!   every core through rayon, and on a 2-core machine a reload paused message flow for tens
//!   of milliseconds. Compiles run on the deploying thread (API or watcher, never a message
//!   thread), one at a time (see `PluginHost`), so a compile takes at most one core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::HostConfig;

pub(crate) fn build_engine(config: &HostConfig) -> wasmtime::Result<Engine> {
    let n = config.max_instances.max(8);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // Python and JS components link several core modules (libc, the runtime, shims).
        .total_core_instances(n * 16)
        .max_core_instances_per_component(64)
        .total_memories(n * 2)
        .max_memories_per_component(4)
        .max_memories_per_module(1)
        .total_tables(n * 8)
        .max_tables_per_component(32)
        .max_tables_per_module(2)
        .table_elements(100_000)
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20)
        .max_memory_size(config.memory_ceiling);

    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .parallel_compilation(false)
        .wasm_component_model(true);
    Engine::new(&cfg)
}

/// Advances the engine's epoch every tick until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Ticks of deadline for a timeout: rounded up, plus one because the current tick may be
/// almost over when the call starts. So a call may run between `timeout` and `timeout + tick`.
pub(crate) fn deadline_ticks(timeout: Duration, tick: Duration) -> u64 {
    let tick_ns = tick.as_nanos().max(1);
    (timeout.as_nanos().div_ceil(tick_ns) as u64).max(1) + 1
}
