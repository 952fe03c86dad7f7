//! A loaded plugin version and its pools of warm instances.
//!
//! Lifecycle of an instance (a [`Worker`]):
//! 1. made from the version's pre-instance (imports already resolved, ~7 µs pooled);
//! 2. taken by one call at a time, returned to its idle list after the call;
//! 3. after a trap, timeout, memory-limit failure or escape it is **dropped**, never reused: a
//!    trapped component instance is poisoned and its memory may be mid-update. The next call
//!    makes a fresh one.
//!
//! Calls go **direct** (on the caller's stack) while the version allows it, else on a fiber
//! (see `worker.rs`). A direct call that reaches a blocking WASI import moves the version to
//! fibers for good; one that runs out of its short direct budget is run again on a fiber, and
//! after [`MAX_OVERRUNS`] such calls in a row the version stays on fibers too. Either way the call that
//! escaped is answered by its fiber run, so callers never see an escape.
//!
//! A `LoadedPlugin` is immutable apart from its idle lists and the direct/fiber switch; a hot
//! swap replaces the whole `Arc<LoadedPlugin>`, so calls that already hold the old one finish
//! on it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::{Engine, Trap};

use super::bindings::{Identity, StoreState};
use super::engine::deadline_ticks;
use super::marshal;
use super::stats::{Outcome, PluginStats};
use super::types::{PluginKind, PluginLimits, PluginLog, RouteContext, RouteVerdict};
use super::worker::{escape_of, CallResult, Escape, Pres, Raw, Worker, DIRECT_TICKS};
use super::PluginError;
use crate::message::Message;

/// Consecutive direct calls of one version that may overrun their budget before it stays on
/// fibers. Consecutive, so that a fast plugin descheduled now and then on a loaded machine
/// keeps the fast path, while a plugin that computes for ticks on every call leaves it.
pub(crate) const MAX_OVERRUNS: u32 = 3;

/// One deployed version, ready to serve.
pub(crate) struct LoadedPlugin {
    pub identity: Arc<Identity>,
    pub kind: PluginKind,
    pub limits: PluginLimits,
    pres: Pres,
    engine: Engine,
    tick: Duration,
    max_idle: usize,
    idle_direct: Mutex<Vec<Worker>>,
    idle_fiber: Mutex<Vec<Worker>>,
    /// Set once direct calls are off for this version (no direct pre-instance, a blocking
    /// import, or too many overruns). Never cleared.
    fiber_only: AtomicBool,
    overruns: AtomicU32,
    pub stats: Arc<PluginStats>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("identity", &self.identity)
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .field("direct", &self.direct())
            .finish_non_exhaustive()
    }
}

/// Wall-clock bound of a call whose computation is bounded by `budget`: twice the budget plus a
/// second of slack for an oversubscribed machine. Only a guest blocked in WASI reaches it.
fn wall_clock_cap(budget: Duration) -> Duration {
    budget * 2 + Duration::from_secs(1)
}

/// How a direct attempt ended.
// Lives on the stack for one call; boxing the worker would add an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    /// The call ran: its result and the worker it ran on.
    Ran(CallResult, Worker, Duration),
    /// Instantiation failed for good.
    Failed(PluginError),
    /// Run it again on a fiber.
    Escaped,
}

impl LoadedPlugin {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: Arc<Identity>,
        kind: PluginKind,
        limits: PluginLimits,
        pres: Pres,
        engine: Engine,
        tick: Duration,
        max_idle: usize,
        stats: Arc<PluginStats>,
    ) -> Self {
        let fiber_only = AtomicBool::new(pres.direct.is_none());
        LoadedPlugin {
            identity,
            kind,
            limits,
            pres,
            engine,
            tick,
            max_idle,
            idle_direct: Mutex::new(Vec::new()),
            idle_fiber: Mutex::new(Vec::new()),
            fiber_only,
            overruns: AtomicU32::new(0),
            stats,
        }
    }

    fn name(&self) -> String {
        self.identity.name.to_string()
    }

    fn version(&self) -> String {
        self.identity.version.to_string()
    }

    /// Whether calls currently go direct.
    pub fn direct(&self) -> bool {
        !self.fiber_only.load(Ordering::Relaxed)
    }

    /// Turns direct calls off for this version for good: host configuration, or an escape
    /// that says this plugin does not fit the direct path.
    pub fn stay_on_fibers(&self) {
        self.fiber_only.store(true, Ordering::Relaxed);
        self.idle_direct.lock().clear();
    }

    fn state(&self) -> StoreState {
        StoreState::new(self.identity.clone(), self.limits.max_memory_bytes)
    }

    /// Records an escape; switches the version to fibers when it says so.
    fn escaped(&self, escape: Escape) {
        let (plugin, version) = (&*self.identity.name, &*self.identity.version);
        let leave = match escape {
            Escape::Blocking(function) => {
                tracing::info!(
                    plugin,
                    version,
                    function,
                    "plugin uses a blocking WASI import"
                );
                true
            }
            Escape::Overrun => {
                let n = self.overruns.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    plugin,
                    version,
                    overruns = n,
                    "direct call overran; rerun on a fiber"
                );
                n >= MAX_OVERRUNS
            }
        };
        if leave {
            self.stay_on_fibers();
            tracing::info!(
                plugin,
                version,
                "calls to this plugin version run on fibers from now on"
            );
        }
    }

    fn instantiate_error(
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

    /// A fresh fiber instance. Instantiation runs guest start code, so it gets a deadline too
    /// (at least a second: interpreters initialise on their first instantiation).
    async fn instantiate_fiber(&self) -> Result<Worker, PluginError> {
        let budget = self.limits.timeout.max(Duration::from_secs(1));
        let ticks = deadline_ticks(budget, self.tick);
        let fiber = Worker::fiber(
            &self.engine,
            &self.pres.fiber,
            self.state(),
            ticks,
            wall_clock_cap(budget),
        );
        match fiber.await {
            Ok(worker) => {
                self.stats.instantiated();
                Ok(worker)
            }
            Err((e, memory_hit)) => Err(self.instantiate_error(e, memory_hit, budget)),
        }
    }

    /// A fresh direct instance, or why not.
    fn instantiate_direct(&self) -> Result<Worker, Result<Escape, PluginError>> {
        let pre = self
            .pres
            .direct
            .as_ref()
            .ok_or(Ok(Escape::Blocking("(not linked)")))?;
        match Worker::direct(&self.engine, pre, self.kind, self.state()) {
            Ok(worker) => {
                self.stats.instantiated();
                Ok(worker)
            }
            Err((e, memory_hit)) => match escape_of(&e) {
                Some(escape) if !memory_hit => Err(Ok(escape)),
                _ => Err(Err(self.instantiate_error(e, memory_hit, self.tick))),
            },
        }
    }

    /// Instantiates once and keeps the instance idle: proves the version can start before it is
    /// swapped in, and warms the pool.
    pub async fn warm_up(&self) -> Result<(), PluginError> {
        if self.direct() {
            match self.instantiate_direct() {
                Ok(worker) => {
                    self.idle_direct.lock().push(worker);
                    return Ok(());
                }
                Err(Ok(escape)) => self.escaped(escape),
                Err(Err(e)) => return Err(e),
            }
        }
        let worker = self.instantiate_fiber().await?;
        self.idle_fiber.lock().push(worker);
        Ok(())
    }

    /// Makes a fresh instance and drops it (instantiation benchmarks).
    pub async fn instantiate_and_drop(&self) -> Result<(), PluginError> {
        if self.direct() {
            if let Ok(worker) = self.instantiate_direct() {
                drop(worker);
                return Ok(());
            }
        }
        self.instantiate_fiber().await.map(drop)
    }

    fn check_kind(&self, expected: PluginKind) -> Result<(), PluginError> {
        if self.kind != expected {
            return Err(PluginError::WrongKind {
                plugin: self.name(),
                expected,
                actual: self.kind,
            });
        }
        Ok(())
    }

    /// Runs the export once on a pooled instance; classifies failures and records stats.
    ///
    /// With `logs`, the call's log lines are captured into it. Lines of a direct attempt that
    /// escaped are discarded: the fiber run logs them again.
    async fn run(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<Raw, PluginError> {
        let capture = logs.is_some();
        if self.direct() {
            match self.attempt_direct(msg, ctx, capture) {
                Attempt::Ran(result, worker, elapsed) => {
                    return self.settle(result, worker, elapsed, msg, logs)
                }
                Attempt::Failed(e) => return Err(e),
                Attempt::Escaped => {}
            }
        }
        let wit_msg = marshal::message_to_wit(msg);
        let wit_ctx = marshal::context_to_wit(ctx);
        let popped = self.idle_fiber.lock().pop();
        let mut worker = match popped {
            Some(w) => w,
            None => self.instantiate_fiber().await?,
        };
        let started = Instant::now();
        worker.prepare(
            deadline_ticks(self.limits.timeout, self.tick),
            msg.id.as_str(),
            capture,
        );
        let result = worker
            .call_fiber(&wit_msg, &wit_ctx, wall_clock_cap(self.limits.timeout))
            .await;
        self.settle(result, worker, started.elapsed(), msg, logs)
    }

    /// One direct try. An escape drops the worker (it is poisoned) and says to use a fiber.
    fn attempt_direct(&self, msg: &Message, ctx: &RouteContext, capture: bool) -> Attempt {
        let popped = self.idle_direct.lock().pop();
        let mut worker = match popped {
            Some(w) => w,
            None => match self.instantiate_direct() {
                Ok(w) => w,
                Err(Ok(escape)) => {
                    self.escaped(escape);
                    return Attempt::Escaped;
                }
                Err(Err(e)) => return Attempt::Failed(e),
            },
        };
        let started = Instant::now();
        worker.prepare(DIRECT_TICKS, msg.id.as_str(), capture);
        let result = worker.call_direct(marshal::message_to_wit(msg), marshal::context_to_wit(ctx));
        let elapsed = started.elapsed();
        if let Err(e) = &result {
            if let Some(escape) = escape_of(e) {
                if !worker.store.data().limiter.hit {
                    drop(worker);
                    self.escaped(escape);
                    return Attempt::Escaped;
                }
            }
        }
        if self.overruns.load(Ordering::Relaxed) != 0 {
            self.overruns.store(0, Ordering::Relaxed);
        }
        Attempt::Ran(result, worker, elapsed)
    }

    /// Returns the worker to its pool or drops it, classifies the outcome, records stats.
    fn settle(
        &self,
        result: CallResult,
        mut worker: Worker,
        elapsed: Duration,
        msg: &Message,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<Raw, PluginError> {
        if let (Some(out), Some(lines)) = (logs, worker.store.data_mut().captured.take()) {
            out.extend(lines);
        }
        match result {
            Ok(Ok(raw)) => {
                self.release(worker);
                let size = match &raw {
                    Raw::Filter(_) => 0,
                    Raw::Transform(m) => marshal::wit_message_size(m),
                    Raw::Router(v) => marshal::wit_verdict_size(v),
                };
                if size > self.limits.max_output_bytes {
                    self.stats.record(Outcome::OutputRejected, elapsed);
                    return Err(PluginError::OutputTooLarge {
                        plugin: self.name(),
                        version: self.version(),
                        size,
                        limit: self.limits.max_output_bytes,
                    });
                }
                self.stats.record(Outcome::Ok, elapsed);
                Ok(raw)
            }
            Ok(Err(reported)) => {
                self.release(worker);
                self.stats.record(Outcome::PluginError, elapsed);
                Err(PluginError::PluginReported {
                    plugin: self.name(),
                    version: self.version(),
                    message: reported.message,
                })
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
                self.stats.record(outcome, elapsed);
                tracing::warn!(plugin = %self.identity.name, version = %self.identity.version,
                    message_id = %msg.id, error = %err, "plugin call failed; instance discarded");
                Err(err)
            }
        }
    }

    fn release(&self, worker: Worker) {
        let pool = if worker.is_direct() {
            if !self.direct() {
                return;
            }
            &self.idle_direct
        } else {
            &self.idle_fiber
        };
        let mut idle = pool.lock();
        if idle.len() < self.max_idle {
            idle.push(worker);
        }
    }

    fn invalid(&self, cause: String) -> PluginError {
        self.stats.ok_was_invalid();
        PluginError::InvalidOutput {
            plugin: self.name(),
            version: self.version(),
            cause,
        }
    }

    pub async fn filter(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<bool, PluginError> {
        self.check_kind(PluginKind::Filter)?;
        match self.run(msg, ctx, logs).await? {
            Raw::Filter(keep) => Ok(keep),
            _ => unreachable!("kind checked"),
        }
    }

    pub async fn transform(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<Message, PluginError> {
        self.check_kind(PluginKind::Transform)?;
        match self.run(msg, ctx, logs).await? {
            Raw::Transform(m) => {
                marshal::message_from_wit(m).map_err(|c| self.invalid(c.to_string()))
            }
            _ => unreachable!("kind checked"),
        }
    }

    pub async fn route(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<RouteVerdict, PluginError> {
        self.check_kind(PluginKind::Router)?;
        match self.run(msg, ctx, logs).await? {
            Raw::Router(v) => marshal::verdict_from_wit(v).map_err(|c| self.invalid(c.to_string())),
            _ => unreachable!("kind checked"),
        }
    }

    /// Idle instances right now (for tests and the admin API).
    pub fn idle_instances(&self) -> usize {
        self.idle_direct.lock().len() + self.idle_fiber.lock().len()
    }
}
