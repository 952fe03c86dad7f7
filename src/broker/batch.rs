//! Publishes that arrive together, routed together: [`Broker::submit_batch`].
//!
//! A batch is what a front end has in hand at once — the publishes of one socket read to one
//! exchange. It changes nothing a publish does: each is routed, then each applied, in order,
//! with its own decision and its own outcome, exactly as [`Broker::submit`] would (routing reads
//! nothing that applying writes). What it changes is the cost: the verdict counters are updated
//! once per batch, and when the exchange is an `x-wasm` exchange whose router takes batches (the
//! `batch-router` world), the router is called **once** for every message, before the routing
//! passes, and each pass takes its message's answer instead of calling (`route::Answered`). A
//! batch the plugin cannot answer whole (a trap, an overrun, a breaker that is open) is routed
//! one call per message, which is also what keeps one bad message from failing its neighbours.

use std::time::Instant;

use super::route::{context, Answered};
use super::{refuse_deep, Broker, BrokerError, Submitted};
use crate::message::Message;
use crate::plugin::{RouteContext, RouteVerdict, Routed};
use crate::routing::{ExchangeKind, Topology};

/// One publish of a batch: what [`Broker::submit`] takes besides the exchange.
#[derive(Debug)]
pub struct Publish<'a> {
    pub routing_key: &'a str,
    pub message: Message,
    pub mandatory: bool,
}

impl Broker {
    /// [`submit`](Broker::submit) for several publishes to one exchange, in order: one result
    /// per publish, as if each had been submitted in turn. A router that takes batches is
    /// called once for all of them (see the module comment).
    pub async fn submit_batch(
        &self,
        exchange: &str,
        batch: Vec<Publish<'_>>,
    ) -> Vec<Result<Submitted, BrokerError>> {
        let topology = self.topology();
        let refused: Vec<Option<BrokerError>> = batch
            .iter()
            .map(|p| refuse_deep(&p.message).err())
            .collect();
        let mut answers = self
            .answer_batch(&topology, exchange, &batch, &refused)
            .into_iter();
        let mut decided = Vec::with_capacity(batch.len());
        for (publish, refused) in batch.into_iter().zip(refused) {
            let answered = answers.next().flatten();
            let key = publish.routing_key;
            let decision = match refused {
                None => {
                    let mut router = self.core.router(&topology, false);
                    router.answered = answered;
                    let route = router.route(exchange, key, publish.message, publish.mandatory);
                    Box::pin(route).await
                }
                Some(e) => Err(e),
            };
            decided.push((decision, key));
        }
        // Counted together (one lock, one lookup per plugin version), then applied in order.
        self.verdicts
            .record_all(decided.iter().filter_map(|(d, _)| d.as_ref().ok()));
        decided
            .into_iter()
            .map(|(decision, key)| decision.and_then(|d| self.apply(d, exchange, key)))
            .collect()
    }

    /// The batch's answers from its exchange's router, one per publish, when the exchange is
    /// routed by a plugin that takes batches; nothing otherwise. A publish routing refuses
    /// before any plugin sees it (`refused`) gets no answer.
    fn answer_batch(
        &self,
        topology: &Topology,
        exchange: &str,
        batch: &[Publish<'_>],
        refused: &[Option<BrokerError>],
    ) -> Vec<Option<Answered<RouteVerdict>>> {
        let Some(ex) = topology.exchange(exchange) else {
            return Vec::new();
        };
        let ExchangeKind::Wasm { plugin } = &ex.kind else {
            return Vec::new();
        };
        if batch.len() < 2 || ex.internal || !ex.pipeline.is_empty() {
            return Vec::new();
        }
        let Ok(serving) = self.core.plugins.serving(plugin) else {
            return Vec::new();
        };
        if !serving.batches() || self.core.breakers.is_open(plugin, serving.version()) {
            return Vec::new();
        }
        // One context per run of publishes with the same routing key: usually the whole batch.
        let mut contexts: Vec<RouteContext> = Vec::new();
        let mut context_of = Vec::with_capacity(batch.len());
        for p in batch {
            if contexts
                .last()
                .is_none_or(|c| c.routing_key != p.routing_key)
            {
                contexts.push(context(ex, p.routing_key));
            }
            context_of.push(contexts.len() - 1);
        }
        let asked: Vec<usize> = (0..batch.len()).filter(|&i| refused[i].is_none()).collect();
        let items: Vec<Routed<'_>> = asked
            .iter()
            .map(|&i| (&batch[i].message, &contexts[context_of[i]]))
            .collect();
        let start = Instant::now();
        let Some(verdicts) = serving.route_batch(&items) else {
            return Vec::new();
        };
        let share = start.elapsed() / items.len() as u32;
        let mut answers: Vec<Option<Answered<RouteVerdict>>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        for (i, result) in asked.into_iter().zip(verdicts) {
            answers[i] = Some(Answered {
                serving: serving.clone(),
                result,
                elapsed: share,
            });
        }
        answers
    }
}
