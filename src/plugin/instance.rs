//! A loaded plugin version and its pool of warm instances.
//!
//! Lifecycle of an instance (a `Worker`: one store plus the bindings of one instance):
//! 1. made from the version's `InstancePre` (imports already resolved, ~7 µs pooled);
//! 2. taken by one call at a time, returned to the idle list after the call;
//! 3. after a trap, timeout or memory-limit failure it is **dropped**, never reused: a trapped
//!    component instance is poisoned ("cannot enter component instance") and its memory may be
//!    mid-update. The next call makes a fresh one.
//!
//! A `LoadedPlugin` is immutable apart from its idle list; a hot swap replaces the whole
//! `Arc<LoadedPlugin>`, so calls that already hold the old one finish on it.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{filter, router, transform, wit, Identity, StoreState};
use super::engine::deadline_ticks;
use super::marshal;
use super::stats::{Outcome, PluginStats};
use super::types::{PluginKind, PluginLimits, RouteContext, RouteVerdict};
use super::PluginError;
use crate::message::Message;

/// The world-typed pre-instance: type-checked against the world when built.
pub(crate) enum Pre {
    Filter(filter::FilterPre<StoreState>),
    Transform(transform::TransformPre<StoreState>),
    Router(router::RouterPre<StoreState>),
}

impl Pre {
    /// Checks that `pre`'s component exports what `kind`'s world requires, with the right types.
    pub fn new(kind: PluginKind, pre: InstancePre<StoreState>) -> wasmtime::Result<Pre> {
        Ok(match kind {
            PluginKind::Filter => Pre::Filter(filter::FilterPre::new(pre)?),
            PluginKind::Transform => Pre::Transform(transform::TransformPre::new(pre)?),
            PluginKind::Router => Pre::Router(router::RouterPre::new(pre)?),
        })
    }
}

enum Bound {
    Filter(filter::Filter),
    Transform(transform::Transform),
    Router(router::Router),
}

struct Worker {
    store: Store<StoreState>,
    bound: Bound,
}

/// One deployed version, ready to serve.
pub(crate) struct LoadedPlugin {
    pub identity: Arc<Identity>,
    pub kind: PluginKind,
    pub limits: PluginLimits,
    pre: Pre,
    engine: Engine,
    tick: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Worker>>,
    pub stats: Arc<PluginStats>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("identity", &self.identity)
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Wall-clock bound of a call whose computation is bounded by `budget`: twice the budget plus a
/// second of slack for an oversubscribed machine. Only a guest blocked in WASI reaches it.
fn wall_clock_cap(budget: Duration) -> Duration {
    budget * 2 + Duration::from_secs(1)
}

/// Result of running the export once, before conversion to host types.
// Lives on the stack for one call; boxing the large variant would add an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Raw {
    Filter(bool),
    Transform(wit::Message),
    Router(wit::Verdict),
}

impl LoadedPlugin {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: Arc<Identity>,
        kind: PluginKind,
        limits: PluginLimits,
        pre: Pre,
        engine: Engine,
        tick: Duration,
        max_idle: usize,
        stats: Arc<PluginStats>,
    ) -> Self {
        LoadedPlugin {
            identity,
            kind,
            limits,
            pre,
            engine,
            tick,
            max_idle,
            idle: Mutex::new(Vec::new()),
            stats,
        }
    }

    fn name(&self) -> String {
        self.identity.name.to_string()
    }

    fn version(&self) -> String {
        self.identity.version.to_string()
    }

    /// Makes a fresh instance. Instantiation runs guest start code, so it gets a deadline too
    /// (at least a second: interpreters initialise on their first instantiation).
    async fn instantiate(&self) -> Result<Worker, PluginError> {
        let mut store = Store::new(
            &self.engine,
            StoreState::new(self.identity.clone(), self.limits.max_memory_bytes),
        );
        store.limiter(|s| &mut s.limiter);
        // Each epoch tick the guest observes costs one tick of its budget and yields to the
        // executor, so a long call never holds an async worker for more than a tick.
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            if state.ticks_left == 0 {
                return Ok(UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        let budget = self.limits.timeout.max(Duration::from_secs(1));
        store.data_mut().ticks_left = deadline_ticks(budget, self.tick);
        store.set_epoch_deadline(1);
        let instantiate = async {
            match &self.pre {
                Pre::Filter(p) => p.instantiate_async(&mut store).await.map(Bound::Filter),
                Pre::Transform(p) => p.instantiate_async(&mut store).await.map(Bound::Transform),
                Pre::Router(p) => p.instantiate_async(&mut store).await.map(Bound::Router),
            }
        };
        let bound = tokio::time::timeout(wall_clock_cap(budget), instantiate).await;
        match bound {
            Ok(Ok(bound)) => {
                self.stats.instantiated();
                Ok(Worker { store, bound })
            }
            Ok(Err(_)) if store.data().limiter.hit => Err(PluginError::MemoryLimit {
                plugin: self.name(),
                version: self.version(),
                limit: self.limits.max_memory_bytes,
            }),
            Ok(Err(e)) => Err(PluginError::Instantiate {
                plugin: self.name(),
                version: self.version(),
                cause: format!("{e:#}"),
            }),
            Err(_) => Err(PluginError::Instantiate {
                plugin: self.name(),
                version: self.version(),
                cause: format!("start code blocked for more than {budget:?}"),
            }),
        }
    }

    /// Instantiates once and keeps the instance idle: proves the version can start before it is
    /// swapped in, and warms the pool.
    pub async fn warm_up(&self) -> Result<(), PluginError> {
        let worker = self.instantiate().await?;
        self.idle.lock().push(worker);
        Ok(())
    }

    /// Makes a fresh instance and drops it (instantiation benchmarks).
    pub async fn instantiate_and_drop(&self) -> Result<(), PluginError> {
        self.instantiate().await.map(drop)
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
    async fn run(&self, msg: &Message, ctx: &RouteContext) -> Result<Raw, PluginError> {
        let wit_msg = marshal::message_to_wit(msg);
        let wit_ctx = marshal::context_to_wit(ctx);
        let popped = self.idle.lock().pop();
        let mut worker = match popped {
            Some(w) => w,
            None => self.instantiate().await?,
        };
        let started = Instant::now();
        {
            let data = worker.store.data_mut();
            data.limiter.hit = false;
            data.ticks_left = deadline_ticks(self.limits.timeout, self.tick);
            data.message_id.clear();
            data.message_id.push_str(msg.id.as_str());
        }
        worker.store.set_epoch_deadline(1);
        let result = {
            let Worker { store, bound } = &mut worker;
            let call = async {
                match bound {
                    Bound::Filter(b) => b
                        .call_filter(&mut *store, &wit_msg, &wit_ctx)
                        .await
                        .map(|r| r.map(Raw::Filter)),
                    Bound::Transform(b) => b
                        .call_transform(&mut *store, &wit_msg, &wit_ctx)
                        .await
                        .map(|r| r.map(Raw::Transform)),
                    Bound::Router(b) => b
                        .call_route(&mut *store, &wit_msg, &wit_ctx)
                        .await
                        .map(|r| r.map(Raw::Router)),
                }
            };
            // The tick budget bounds guest computation; a timer bounds time blocked in WASI (a
            // guest that sleeps or polls), which no epoch tick interrupts. Most calls complete in
            // their first poll and need no timer: it is armed only for a call that suspends.
            let mut call = std::pin::pin!(call);
            let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
            match first {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    match tokio::time::timeout(wall_clock_cap(self.limits.timeout), call).await {
                        Ok(result) => result,
                        Err(_) => Err(wasmtime::Error::from(Trap::Interrupt)),
                    }
                }
            }
        };
        let elapsed = started.elapsed();
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
        let mut idle = self.idle.lock();
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

    pub async fn filter(&self, msg: &Message, ctx: &RouteContext) -> Result<bool, PluginError> {
        self.check_kind(PluginKind::Filter)?;
        match self.run(msg, ctx).await? {
            Raw::Filter(keep) => Ok(keep),
            _ => unreachable!("kind checked"),
        }
    }

    pub async fn transform(
        &self,
        msg: &Message,
        ctx: &RouteContext,
    ) -> Result<Message, PluginError> {
        self.check_kind(PluginKind::Transform)?;
        match self.run(msg, ctx).await? {
            Raw::Transform(m) => marshal::message_from_wit(m).map_err(|c| self.invalid(c)),
            _ => unreachable!("kind checked"),
        }
    }

    pub async fn route(
        &self,
        msg: &Message,
        ctx: &RouteContext,
    ) -> Result<RouteVerdict, PluginError> {
        self.check_kind(PluginKind::Router)?;
        match self.run(msg, ctx).await? {
            Raw::Router(v) => marshal::verdict_from_wit(v).map_err(|c| self.invalid(c)),
            _ => unreachable!("kind checked"),
        }
    }

    /// Idle instances right now (for tests and the admin API).
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().len()
    }
}
