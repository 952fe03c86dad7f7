//! A warm instance of one plugin version (a `Worker`: one store plus the instance's export), and
//! the two ways to call it.
//!
//! - **Direct**: the export runs on the caller's stack, like any function call. It is the fast
//!   path (a fiber switch, the boxed call future and the async trampolines cost more than a
//!   small router's whole call), and it is safe only because (a) the instance was linked with
//!   [`nonblocking`](super::nonblocking) WASI, so no import can block, and (b) its compute budget
//!   is short: the epoch callback interrupts it after [`DIRECT_TICKS`] ticks. A call that hits
//!   either bound *escapes*: the instance is dropped and the caller runs the call again on a
//!   fiber.
//! - **Fiber**: the export runs on a wasmtime fiber (`call_async`) with WASI linked async. A
//!   guest that computes yields to the executor at every tick until it has used its deadline
//!   in CPU time (metered per poll, see `cpu.rs`); a guest blocked in WASI waits on a timer.
//!
//! Invariant: a worker that failed a call in any way other than a plugin-reported error is
//! dropped, never reused (a trapped component instance is poisoned).

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use wasmtime::component::{InstancePre, Resource, TypedFunc};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{batch_router, filter, router, transform, view_router, wit, StoreState};
use super::cpu::metered;
use super::lifted::{Verdict, Verdicts};
use super::marshal;
use super::nonblocking::NeedsFiber;
use super::types::{PluginKind, RouteContext};
use super::view::{self, MessageView, Routed, View};
use crate::message::Message;

/// Ticks a direct call may observe before it is interrupted and moved to a fiber: one full
/// tick at least (5 ms by default), at most two. A small plugin's call is microseconds.
pub(crate) const DIRECT_TICKS: u64 = 1;

/// How much a call may compute before it is interrupted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// Epoch ticks the guest observes (direct calls).
    Ticks(u64),
    /// CPU time on the thread that polls the call (fiber calls; see `cpu.rs`).
    Cpu(Duration),
}

/// Which world a component implements: its [`PluginKind`] and, for a router, how it reads the
/// message (a `message` record copied in, a `message-view` read lazily, or many messages per call
/// read lazily by index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum World {
    Filter,
    Transform,
    Router,
    ViewRouter,
    BatchRouter,
}

impl World {
    pub fn kind(self) -> PluginKind {
        match self {
            World::Filter => PluginKind::Filter,
            World::Transform => PluginKind::Transform,
            World::Router | World::ViewRouter | World::BatchRouter => PluginKind::Router,
        }
    }

    /// The export a call goes to.
    pub fn export(self) -> &'static str {
        match self {
            World::BatchRouter => "route-batch",
            other => other.kind().export(),
        }
    }

    /// The WIT world name.
    pub fn name(self) -> &'static str {
        match self {
            World::ViewRouter => "view-router",
            World::BatchRouter => "batch-router",
            other => other.kind().world(),
        }
    }
}

/// The world-typed pre-instances of a version: always one for fibers; one for direct calls
/// unless the component could not be linked with non-blocking WASI.
pub(crate) struct Pres {
    pub fiber: FiberPre,
    pub direct: Option<InstancePre<StoreState>>,
}

/// Type-checked against the world when built.
pub(crate) enum FiberPre {
    Filter(filter::FilterPre<StoreState>),
    Transform(transform::TransformPre<StoreState>),
    Router(router::RouterPre<StoreState>),
    ViewRouter(view_router::ViewRouterPre<StoreState>),
    BatchRouter(batch_router::BatchRouterPre<StoreState>),
}

impl FiberPre {
    /// Checks that `pre`'s component exports what `kind`'s world requires, with the right types.
    /// A router may take a `message` (world `router`) or a `message-view` (`view-router`), both
    /// exporting `route` and told apart by the parameter's type, or batches (`batch-router`,
    /// exporting `route-batch`).
    pub fn new(kind: PluginKind, pre: InstancePre<StoreState>) -> wasmtime::Result<FiberPre> {
        Ok(match kind {
            PluginKind::Filter => FiberPre::Filter(filter::FilterPre::new(pre)?),
            PluginKind::Transform => FiberPre::Transform(transform::TransformPre::new(pre)?),
            PluginKind::Router => match router::RouterPre::new(pre.clone()) {
                Ok(record) => FiberPre::Router(record),
                Err(record) => match view_router::ViewRouterPre::new(pre.clone()) {
                    Ok(view) => FiberPre::ViewRouter(view),
                    Err(view) => match batch_router::BatchRouterPre::new(pre) {
                        Ok(batch) => FiberPre::BatchRouter(batch),
                        Err(batch) => wasmtime::bail!(
                            "as a router: {record:#}; as a view-router: {view:#}; \
                             as a batch-router: {batch:#}"
                        ),
                    },
                },
            },
        })
    }

    pub fn world(&self) -> World {
        match self {
            FiberPre::Filter(_) => World::Filter,
            FiberPre::Transform(_) => World::Transform,
            FiberPre::Router(_) => World::Router,
            FiberPre::ViewRouter(_) => World::ViewRouter,
            FiberPre::BatchRouter(_) => World::BatchRouter,
        }
    }
}

type Args = (wit::Message, wit::RouteContext);

/// An export typed once per instance, for direct calls.
enum DirectExport {
    Filter(TypedFunc<Args, (Result<bool, wit::PluginError>,)>),
    Transform(TypedFunc<Args, (Result<wit::Message, wit::PluginError>,)>),
    Router(TypedFunc<Args, (Result<Verdict, wit::PluginError>,)>),
    ViewRouter(TypedFunc<(Resource<MessageView>,), (Result<Verdict, wit::PluginError>,)>),
    BatchRouter(TypedFunc<(u32,), (Verdicts,)>),
}

enum FiberExport {
    Filter(filter::Filter),
    Transform(transform::Transform),
    Router(router::Router),
    ViewRouter(view_router::ViewRouter),
    BatchRouter(batch_router::BatchRouter),
}

enum Export {
    Direct(DirectExport),
    Fiber(FiberExport),
}

/// What a call returned, before conversion to host types. A transform's message is boxed so
/// that a router's or filter's result, moved through several frames, stays small (the message
/// is ten times the size of the other variants). Measured: no difference above this machine's
/// noise for a router call (`docs/benchmarks.md`); the transform pays one allocation.
pub(crate) enum Raw {
    Filter(bool),
    Transform(Box<wit::Message>),
    Router(Verdict),
}

/// A call's result: a trap or host error outside, the plugin's own verdict or error inside.
pub(crate) type CallResult = wasmtime::Result<Result<Raw, wit::PluginError>>;

/// Why a direct call or instantiation gave up, when it did not simply fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// Reached a blocking WASI import: this version needs fibers.
    Blocking(&'static str),
    /// Used its direct compute budget.
    Overrun,
}

/// A failed instantiation, and whether it hit the memory cap (the store is gone by then).
pub(crate) type StartError = (wasmtime::Error, bool);

/// Classifies a direct call's error: an escape, or a genuine failure.
pub(crate) fn escape_of(e: &wasmtime::Error) -> Option<Escape> {
    if let Some(NeedsFiber(function)) = e.downcast_ref::<NeedsFiber>() {
        return Some(Escape::Blocking(function));
    }
    (e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)).then_some(Escape::Overrun)
}

pub(crate) struct Worker {
    pub store: Store<StoreState>,
    export: Export,
}

impl Worker {
    /// A store with the memory cap; `ticks` of budget for whatever runs first.
    fn store(engine: &Engine, state: StoreState, ticks: u64, direct: bool) -> Store<StoreState> {
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        // Direct calls and instantiation: each tick the guest observes costs one tick of its
        // budget. On a fiber the guest also yields to the executor at every tick, so a long call
        // never holds an async worker for more than a tick; a direct call cannot yield.
        store.epoch_deadline_callback(move |mut cx| {
            let state = cx.data_mut();
            if let Some(limit) = state.cpu_limit {
                // A fiber call: its deadline is CPU time (see `cpu.rs`), checked at each tick.
                return Ok(if state.meter.used() >= limit {
                    UpdateDeadline::Interrupt
                } else {
                    UpdateDeadline::Yield(1)
                });
            }
            if state.ticks_left == 0 {
                return Ok(UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            Ok(if direct {
                UpdateDeadline::Continue(1)
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.data_mut().ticks_left = ticks;
        store.set_epoch_deadline(1);
        store
    }

    /// Instantiates for direct calls: synchronous, start code bounded by [`DIRECT_TICKS`].
    pub fn direct(
        engine: &Engine,
        pre: &InstancePre<StoreState>,
        world: World,
        state: StoreState,
    ) -> Result<Worker, StartError> {
        let mut store = Self::store(engine, state, DIRECT_TICKS, true);
        let export = (|| {
            let instance = pre.instantiate(&mut store)?;
            let name = world.export();
            wasmtime::Result::Ok(match world {
                World::Filter => DirectExport::Filter(instance.get_typed_func(&mut store, name)?),
                World::Transform => {
                    DirectExport::Transform(instance.get_typed_func(&mut store, name)?)
                }
                World::Router => DirectExport::Router(instance.get_typed_func(&mut store, name)?),
                World::ViewRouter => {
                    DirectExport::ViewRouter(instance.get_typed_func(&mut store, name)?)
                }
                World::BatchRouter => {
                    DirectExport::BatchRouter(instance.get_typed_func(&mut store, name)?)
                }
            })
        })();
        match export {
            Ok(export) => Ok(Worker {
                store,
                export: Export::Direct(export),
            }),
            Err(e) => Err((e, store.data().limiter.hit)),
        }
    }

    /// Instantiates for fiber calls, start code bounded by `ticks` and, if it blocks in WASI,
    /// by `wall_clock`.
    pub async fn fiber(
        engine: &Engine,
        pre: &FiberPre,
        state: StoreState,
        ticks: u64,
        wall_clock: Duration,
    ) -> Result<Worker, StartError> {
        let mut store = Self::store(engine, state, ticks, false);
        let instantiate = async {
            match pre {
                FiberPre::Filter(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(FiberExport::Filter),
                FiberPre::Transform(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(FiberExport::Transform),
                FiberPre::Router(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(FiberExport::Router),
                FiberPre::ViewRouter(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(FiberExport::ViewRouter),
                FiberPre::BatchRouter(p) => p
                    .instantiate_async(&mut store)
                    .await
                    .map(FiberExport::BatchRouter),
            }
        };
        let export = tokio::time::timeout(wall_clock, instantiate)
            .await
            .unwrap_or_else(|_| Err(wasmtime::Error::from(Trap::Interrupt)));
        match export {
            Ok(export) => Ok(Worker {
                store,
                export: Export::Fiber(export),
            }),
            Err(e) => Err((e, store.data().limiter.hit)),
        }
    }

    pub fn is_direct(&self) -> bool {
        matches!(self.export, Export::Direct(_))
    }

    /// Resets the per-call state: budget, memory-limit flag, message id for log lines, and
    /// whether to capture the call's log lines and record its reads (`memo.rs`).
    ///
    /// `budget`: a direct call's ticks, or a fiber call's CPU time.
    pub fn prepare(&mut self, budget: Budget, message_id: &str, capture: bool, record: bool) {
        let data = self.store.data_mut();
        data.limiter.hit = false;
        data.captured = capture.then(Vec::new);
        data.record_reads(record);
        match budget {
            Budget::Ticks(ticks) => {
                data.ticks_left = ticks;
                data.cpu_limit = None;
            }
            Budget::Cpu(limit) => {
                data.meter.reset();
                data.cpu_limit = Some(limit);
            }
        }
        data.message_id.clear();
        data.message_id.push_str(message_id);
        self.store.set_epoch_deadline(1);
    }

    /// CPU the last fiber call used (zero for direct calls, which are not metered: their
    /// budget of [`DIRECT_TICKS`] bounds them).
    pub fn cpu_used(&self) -> Duration {
        let data = self.store.data();
        match data.cpu_limit {
            Some(_) => data.meter.used(),
            None => Duration::ZERO,
        }
    }

    /// Calls a direct worker's export. Panics on a fiber worker (a bug in the caller).
    pub fn call_direct(&mut self, msg: &Message, ctx: &RouteContext) -> CallResult {
        let Export::Direct(export) = &self.export else {
            unreachable!("call_direct on a fiber worker")
        };
        let store = &mut self.store;
        let items = [(msg, ctx)];
        match export {
            DirectExport::ViewRouter(f) => {
                let call = |store: &mut _| f.call(store, (view::lend(),));
                let (r,) = view::lend_during(store, &items, call)?;
                return Ok(r.map(Raw::Router));
            }
            DirectExport::BatchRouter(f) => {
                let (v,) = view::lend_during(store, &items, |store| f.call(store, (1,)))?;
                return Ok(only(v.answers, &v.of)?.map(Raw::Router));
            }
            _ => {}
        }
        let args = (marshal::message_to_wit(msg), marshal::context_to_wit(ctx));
        Ok(match export {
            DirectExport::Filter(f) => {
                let (r,) = f.call(&mut *store, args)?;
                r.map(Raw::Filter)
            }
            DirectExport::Transform(f) => {
                let (r,) = f.call(&mut *store, args)?;
                r.map(|m| Raw::Transform(Box::new(m)))
            }
            DirectExport::Router(f) => {
                let (r,) = f.call(&mut *store, args)?;
                r.map(Raw::Router)
            }
            DirectExport::ViewRouter(_) | DirectExport::BatchRouter(_) => {
                unreachable!("answered above")
            }
        })
    }

    /// Calls a direct `batch-router` worker's export once for all of `items`: answers whose
    /// indices are checked to name one answer per item. Panics on any other worker (a bug in
    /// the caller).
    pub fn call_direct_batch(&mut self, items: &[Routed<'_>]) -> wasmtime::Result<Verdicts> {
        let Export::Direct(DirectExport::BatchRouter(f)) = &self.export else {
            unreachable!("call_direct_batch on a worker that is not a direct batch router")
        };
        let count = u32::try_from(items.len())?;
        let (v,) = view::lend_during(&mut self.store, items, |store| f.call(store, (count,)))?;
        check_picks(v.answers.len(), &v.of, items.len())?;
        Ok(v)
    }

    /// Calls a fiber worker's export; a call that suspends (blocked in WASI) is bounded by
    /// `wall_clock`. Panics on a direct worker (a bug in the caller).
    pub async fn call_fiber(
        &mut self,
        msg: &Message,
        ctx: &RouteContext,
        wall_clock: Duration,
    ) -> CallResult {
        let result = self.call_fiber_inner(msg, ctx, wall_clock).await;
        // Cleared here, not in the call, so that a call cut off by its wall clock clears it too.
        self.store.data_mut().view = None;
        result
    }

    async fn call_fiber_inner(
        &mut self,
        msg: &Message,
        ctx: &RouteContext,
        wall_clock: Duration,
    ) -> CallResult {
        let meter = self.store.data().meter.clone();
        let Worker { store, export } = self;
        let Export::Fiber(export) = export else {
            unreachable!("call_fiber on a direct worker")
        };
        let record = match export {
            FiberExport::ViewRouter(_) | FiberExport::BatchRouter(_) => {
                store.data_mut().view = Some(View::copy(msg, ctx));
                None
            }
            _ => Some((marshal::message_to_wit(msg), marshal::context_to_wit(ctx))),
        };
        let call = metered(&meter, async {
            match (export, &record) {
                (FiberExport::Filter(b), Some((m, c))) => b
                    .call_filter(&mut *store, m, c)
                    .await
                    .map(|r| r.map(Raw::Filter)),
                (FiberExport::Transform(b), Some((m, c))) => b
                    .call_transform(&mut *store, m, c)
                    .await
                    .map(|r| r.map(|m| Raw::Transform(Box::new(m)))),
                (FiberExport::Router(b), Some((m, c))) => b
                    .call_route(&mut *store, m, c)
                    .await
                    .map(|r| r.map(|v| Raw::Router(v.into()))),
                (FiberExport::ViewRouter(b), _) => b
                    .call_route(&mut *store, view::lend())
                    .await
                    .map(|r| r.map(|v| Raw::Router(v.into()))),
                (FiberExport::BatchRouter(b), _) => b
                    .call_route_batch(&mut *store, 1)
                    .await
                    .and_then(|v| only(v.answers, &v.of))
                    .map(|r| r.map(|v| Raw::Router(v.into()))),
                (_, None) => unreachable!("record worlds are marshalled above"),
            }
        });
        // Most calls complete in their first poll and need no timer: it is armed only for a
        // call that suspends.
        let mut call = std::pin::pin!(call);
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(result) => result,
            Poll::Pending => match tokio::time::timeout(wall_clock, call).await {
                Ok(result) => result,
                Err(_) => Err(wasmtime::Error::from(Trap::Interrupt)),
            },
        }
    }
}

/// A batch's answers must name one answer per message (`of`), each in range; anything else
/// breaks the contract and fails the call like a trap (the instance is dropped).
fn check_picks(answers: usize, of: &[u32], messages: usize) -> wasmtime::Result<()> {
    if of.len() != messages {
        wasmtime::bail!(
            "route-batch answered for {} messages of {messages}",
            of.len()
        );
    }
    if let Some(i) = of.iter().find(|&&i| i as usize >= answers) {
        wasmtime::bail!("route-batch picked answer {i} of {answers}");
    }
    Ok(())
}

/// The one answer of a batch of one (lifted by a direct call, or generated by a fiber call's
/// bindings).
fn only<T>(mut answers: Vec<T>, of: &[u32]) -> wasmtime::Result<T> {
    check_picks(answers.len(), of, 1)?;
    Ok(answers.swap_remove(of[0] as usize))
}
