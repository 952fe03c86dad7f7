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
//! after [`MAX_OVERRUNS`] such calls in a row the version stays on fibers too. Either way the
//! call that escaped is answered by its fiber run, so callers never see an escape.
//!
//! A version whose call was costly (failed, or computed past `penalty::HEAVY`) is
//! **penalized**: its calls run on fibers in the penalty lane (`lane.rs`), one at a time, until
//! it has run clean for a while (`penalty.rs`). Its callers wait; everyone else keeps the CPU.
//!
//! A `batch-router` version routes many messages in one call (`batch.rs`).
//!
//! A `view-router` or `batch-router` version deployed with `switchyard.verdict-cache = on`
//! answers what it has answered before from its verdict cache (`memo.rs`), without a call; dry
//! runs always call.
//!
//! A `LoadedPlugin` is immutable apart from its idle lists, the direct/fiber switch, the
//! penalty state and the verdict cache; a hot swap replaces the whole `Arc<LoadedPlugin>`, so
//! calls that already hold the old one finish on it, and a new version starts unpenalized, with
//! an empty cache.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::Engine;

use super::bindings::{Identity, StoreState};
use super::engine::deadline_ticks;
use super::lane::Lane;
use super::memo::{Reads, VerdictCache};
use super::penalty::Penalty;
use super::stats::PluginStats;
use super::types::{PluginKind, PluginLimits, PluginLog, RouteContext};
use super::worker::{
    escape_of, Budget, CallResult, Escape, Pres, Raw, Worker, World, DIRECT_TICKS,
};
use super::PluginError;
use crate::message::Message;

mod batch;
mod calls;
mod settle;

use settle::Cost;

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
    /// Set once a batch call overran its direct budget: batches are off for this version
    /// (`batch.rs`). Never cleared.
    batch_overran: AtomicBool,
    /// `None`: the host runs no penalty lane (`HostConfig::penalty_lane`).
    lane: Option<Lane>,
    penalty: Penalty,
    /// Held by this version's call in the lane: one at a time, so a bad version holds at most
    /// one instance's memory there and its backlog waits here, not in the lane.
    lane_turn: tokio::sync::Mutex<()>,
    /// `Some` for a `view-router` version deployed with the verdict cache on (`memo.rs`).
    memo: Option<VerdictCache>,
    pub stats: Arc<PluginStats>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("identity", &self.identity)
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .field("direct", &self.direct())
            .field("penalized", &self.penalized())
            .finish_non_exhaustive()
    }
}

/// Wall-clock bound of a call whose computation is bounded by `budget`: twice the budget plus a
/// second of slack for an oversubscribed machine. Only a guest blocked in WASI reaches it.
fn wall_clock_cap(budget: Duration) -> Duration {
    budget * 2 + Duration::from_secs(1)
}

/// The penalty lane runs only on otherwise idle CPU (`SCHED_IDLE`): on a saturated machine a
/// call that computes for its whole budget there may need this many times longer.
const LANE_WALL_CLOCK_FACTOR: u32 = 20;

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
        lane: Option<Lane>,
        stats: Arc<PluginStats>,
    ) -> Self {
        let fiber_only = AtomicBool::new(pres.direct.is_none());
        let memo = match pres.fiber.world() {
            World::ViewRouter | World::BatchRouter => VerdictCache::for_config(&identity.config),
            _ => None,
        };
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
            batch_overran: AtomicBool::new(false),
            lane,
            penalty: Penalty::default(),
            lane_turn: tokio::sync::Mutex::new(()),
            memo,
            stats,
        }
    }

    fn name(&self) -> String {
        self.identity.name.to_string()
    }

    fn version(&self) -> String {
        self.identity.version.to_string()
    }

    /// The WIT world this version implements.
    pub fn world(&self) -> &'static str {
        self.pres.fiber.world().name()
    }

    /// Whether calls currently go direct.
    pub fn direct(&self) -> bool {
        !self.fiber_only.load(Ordering::Relaxed)
    }

    /// Whether calls currently go to the penalty lane.
    pub fn penalized(&self) -> bool {
        self.lane.is_some() && self.penalty.active()
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
        match Worker::direct(&self.engine, pre, self.pres.fiber.world(), self.state()) {
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
        self: &Arc<Self>,
        msg: &Message,
        ctx: &RouteContext,
        mut logs: Option<&mut Vec<PluginLog>>,
        reads: Option<&mut Reads>,
    ) -> Result<Raw, PluginError> {
        // The lane and fiber paths are boxed: their futures hold a wasmtime async call and are
        // kilobytes large, and every caller's future would otherwise carry (and move) that
        // much on every call, though most calls are direct and never await.
        let capture = logs.is_some();
        if self.penalized() {
            if let Some((result, lines)) = Box::pin(self.run_in_lane(msg, ctx, capture)).await {
                if let (Some(out), Some(lines)) = (logs.as_deref_mut(), lines) {
                    out.extend(lines);
                }
                // The lane records nothing: a penalized call is not remembered.
                if let Some(reads) = reads {
                    reads.tainted = true;
                }
                return result;
            }
        }
        if self.direct() {
            match self.attempt_direct(msg, ctx, capture, reads.is_some()) {
                Attempt::Ran(result, worker, elapsed) => {
                    let cost = Cost {
                        elapsed,
                        cpu: Duration::ZERO,
                    };
                    return self.settle(result, worker, cost, msg, logs, reads);
                }
                Attempt::Failed(e) => return Err(e),
                Attempt::Escaped => {}
            }
        }
        let cap = wall_clock_cap(self.limits.timeout);
        Box::pin(self.run_fiber(msg, ctx, logs, reads, cap)).await
    }

    /// Runs the call on a fiber in the penalty lane, after this version's calls before it.
    /// `None` if the lane has stopped (shutdown): the caller runs it itself.
    async fn run_in_lane(
        self: &Arc<Self>,
        msg: &Message,
        ctx: &RouteContext,
        capture: bool,
    ) -> Option<(Result<Raw, PluginError>, Option<Vec<PluginLog>>)> {
        let lane = self.lane.as_ref()?;
        let (plugin, msg, ctx) = (self.clone(), msg.clone(), ctx.clone());
        lane.run(async move {
            let _turn = plugin.lane_turn.lock().await;
            let mut lines = capture.then(Vec::new);
            let cap = wall_clock_cap(plugin.limits.timeout) * LANE_WALL_CLOCK_FACTOR;
            let result = plugin
                .run_fiber(&msg, &ctx, lines.as_mut(), None, cap)
                .await;
            plugin.stats.lane_call();
            (result, lines)
        })
        .await
    }

    /// Runs the call on a fiber: on this task, or in the lane's. Its deadline is CPU time.
    async fn run_fiber(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
        reads: Option<&mut Reads>,
        wall_clock: Duration,
    ) -> Result<Raw, PluginError> {
        let popped = self.idle_fiber.lock().pop();
        let mut worker = match popped {
            Some(w) => w,
            None => self.instantiate_fiber().await?,
        };
        let started = Instant::now();
        worker.prepare(
            Budget::Cpu(self.limits.timeout),
            msg.id.as_str(),
            logs.is_some(),
            reads.is_some(),
        );
        let result = worker.call_fiber(msg, ctx, wall_clock).await;
        let cost = Cost {
            elapsed: started.elapsed(),
            cpu: worker.cpu_used(),
        };
        self.settle(result, worker, cost, msg, logs, reads)
    }

    /// One direct try. An escape drops the worker (it is poisoned) and says to use a fiber.
    fn attempt_direct(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        capture: bool,
        record: bool,
    ) -> Attempt {
        let mut worker = match self.direct_worker() {
            Ok(w) => w,
            Err(None) => return Attempt::Escaped,
            Err(Some(e)) => return Attempt::Failed(e),
        };
        let started = Instant::now();
        worker.prepare(
            Budget::Ticks(DIRECT_TICKS),
            msg.id.as_str(),
            capture,
            record,
        );
        let result = worker.call_direct(msg, ctx);
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
        self.ran_within_budget();
        Attempt::Ran(result, worker, elapsed)
    }

    /// An idle direct instance, or a fresh one. `Err(None)`: instantiation escaped (recorded),
    /// so the call belongs on a fiber; `Err(Some(e))`: it failed for good.
    fn direct_worker(&self) -> Result<Worker, Option<PluginError>> {
        let popped = self.idle_direct.lock().pop();
        match popped {
            Some(w) => Ok(w),
            None => self.instantiate_direct().map_err(|e| match e {
                Ok(escape) => {
                    self.escaped(escape);
                    None
                }
                Err(e) => Some(e),
            }),
        }
    }

    /// A direct call finished within its budget: overruns count only when consecutive.
    fn ran_within_budget(&self) {
        if self.overruns.load(Ordering::Relaxed) != 0 {
            self.overruns.store(0, Ordering::Relaxed);
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

    /// Idle instances right now (for tests and the admin API).
    pub fn idle_instances(&self) -> usize {
        self.idle_direct.lock().len() + self.idle_fiber.lock().len()
    }
}
