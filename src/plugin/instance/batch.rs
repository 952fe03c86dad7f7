//! Batch calls: one call of a `batch-router` version routes every message published together.
//!
//! Only the fast path batches: a direct call, on a version that is not penalized and keeps no
//! verdict cache. Anything else — and a batch call that escapes or fails — answers `None`, and
//! the caller routes the messages one by one through [`LoadedPlugin::route`], which has every
//! fallback (fibers, the penalty lane, the cache). That is also what isolates a bad message: a
//! batch that traps is not blamed on its neighbours; each message's own call decides its fate.
//!
//! A batch call is counted in the version's statistics as one call per message, each taking an
//! equal share of the batch's time, so the figures read the same whichever path ran.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LoadedPlugin;
use crate::plugin::bindings::wit;
use crate::plugin::lifted::{Verdict, Verdicts};
use crate::plugin::marshal;
use crate::plugin::stats::Outcome;
use crate::plugin::types::RouteVerdict;
use crate::plugin::view::Routed;
use crate::plugin::worker::{escape_of, Budget, Escape, Raw, World, DIRECT_TICKS};
use crate::plugin::PluginError;

impl LoadedPlugin {
    /// Whether [`route_batch`](Self::route_batch) would try a batch call now.
    pub fn batches(&self) -> bool {
        self.pres.fiber.world() == World::BatchRouter
            && self.direct()
            && !self.penalized()
            && !self.batch_overran.load(Ordering::Relaxed)
            && !self.memo.as_ref().is_some_and(|m| m.on())
    }

    /// Routes `items` in one call, one verdict per item, in order (a verdict shared by several
    /// items is copied); `None` if the batch path is not open or the call did not complete (see
    /// the module comment).
    pub fn route_batch(
        self: &Arc<Self>,
        items: &[Routed<'_>],
    ) -> Option<Vec<Result<RouteVerdict, PluginError>>> {
        let first = items.first()?;
        if !self.batches() {
            return None;
        }
        // A failure to instantiate is reported by the calls of one message each that follow.
        let mut worker = self.direct_worker().ok()?;
        let started = Instant::now();
        // Log lines of a batch call carry its first message's id.
        worker.prepare(
            Budget::Ticks(DIRECT_TICKS),
            first.0.id.as_str(),
            false,
            false,
        );
        let result = worker.call_direct_batch(items);
        let elapsed = started.elapsed();
        let Verdicts { answers, of } = match result {
            Ok(verdicts) => verdicts,
            Err(e) => {
                let escape = escape_of(&e).filter(|_| !worker.store.data().limiter.hit);
                drop(worker);
                self.batch_failed(escape, &e, items.len());
                return None;
            }
        };
        self.release(worker);
        self.ran_within_budget();
        let share = elapsed / items.len() as u32;
        // Each answer is judged and converted once, however many messages picked it; the last
        // message to pick it takes it, the others a copy.
        let mut last_pick = vec![None; answers.len()];
        for (i, &a) in of.iter().enumerate() {
            last_pick[a as usize] = Some(i);
        }
        let mut judged: Vec<_> = answers
            .into_iter()
            .zip(&last_pick)
            .map(|(answer, last)| last.map(|_| self.judge_route(answer)))
            .collect();
        let mut verdicts = Vec::with_capacity(of.len());
        let mut ok = 0;
        for (i, &a) in of.iter().enumerate() {
            let slot = &mut judged[a as usize];
            let (outcome, verdict) = match last_pick[a as usize] == Some(i) {
                true => slot.take(),
                false => slot.clone(),
            }
            .expect("every picked answer is judged, and taken at its last pick");
            // Clean answers are counted together; a failure also goes to the penalty state.
            match outcome {
                Outcome::Ok => ok += 1,
                failed => {
                    self.stats.record(failed, share);
                    self.observe(failed, Duration::ZERO);
                }
            }
            verdicts.push(verdict);
        }
        self.stats.record_many(Outcome::Ok, ok, share);
        Some(verdicts)
    }

    /// One answer of a batch, judged as a single call's would be.
    fn judge_route(
        &self,
        answer: Result<Verdict, wit::PluginError>,
    ) -> (Outcome, Result<RouteVerdict, PluginError>) {
        let (mut outcome, result) = self.judge(answer.map(Raw::Router));
        let verdict = result.and_then(|raw| match raw {
            Raw::Router(v) => marshal::verdict_from_wit(v).map_err(|c| {
                outcome = Outcome::PluginError;
                self.invalid_output(c.to_string())
            }),
            _ => unreachable!("judged a router's answer"),
        });
        (outcome, verdict)
    }

    /// A batch call that did not complete. Its messages are routed one by one next; a batch
    /// that overran its direct budget stops this version's batching for good (its messages take
    /// longer together than a direct call may run), while single calls keep the direct path.
    fn batch_failed(&self, escape: Option<Escape>, e: &wasmtime::Error, messages: usize) {
        let (plugin, version) = (&*self.identity.name, &*self.identity.version);
        match escape {
            Some(Escape::Overrun) => {
                self.batch_overran.store(true, Ordering::Relaxed);
                tracing::info!(
                    plugin,
                    version,
                    messages,
                    "a batch call overran the direct budget: this version routes one message \
                     per call from now on"
                );
            }
            Some(blocking) => self.escaped(blocking),
            None => tracing::debug!(
                plugin,
                version,
                messages,
                error = %format!("{e:#}"),
                "batch call failed; routing its messages one by one"
            ),
        }
    }
}
