//! The routing pass: walks exchanges, bindings and plugins and produces a [`Decision`].
//!
//! Nothing here writes to storage. Side effects are limited to plugin calls and, outside dry
//! runs, circuit-breaker bookkeeping; the caller commits the decision's outputs atomically.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::{Breakers, BrokerError, Decision, Output};
use crate::message::Message;
use crate::plugin::{PluginHost, PluginKind, RouteContext, RouteVerdict, Serving, Target};
use crate::queue::QueueStore;
use crate::routing::{BindingTarget, Exchange, ExchangeKind, FailurePolicy, Topology};

mod describe;
mod step;

pub(super) use step::Answered;
use step::{At, Called};

/// Exchange-to-exchange hops one publish may take; deeper (or cyclic) paths stop there.
pub const MAX_HOPS: usize = 8;

/// Header with the reason a message was dead-lettered or quarantined by routing.
pub const REASON_HEADER: &str = "x-switchyard-reason";
/// Headers recording where a message was published, so quarantined messages can be replayed.
pub const EXCHANGE_HEADER: &str = "x-switchyard-exchange";
pub const ROUTING_KEY_HEADER: &str = "x-switchyard-routing-key";

/// Fixed places routing sends messages it cannot deliver normally.
#[derive(Debug, Clone)]
pub struct SpecialQueues {
    pub dead_letter: String,
    pub quarantine: String,
}

/// One routing pass. Construct, call [`Router::route`], get the decision.
pub(super) struct Router<'a> {
    pub topology: &'a Topology,
    pub plugins: &'a PluginHost,
    pub breakers: &'a Breakers,
    pub special: &'a SpecialQueues,
    pub queues: &'a QueueStore,
    /// A dry run leaves breakers untouched.
    pub dry_run: bool,
    pub decision: Decision,
    /// Queues that already got a copy through a built-in binding (one copy per queue).
    pub seen: HashSet<String>,
    /// The published-to exchange's router already answered for this message, in a batch call
    /// (`Broker::submit_batch`): its first routing step takes this answer instead of calling.
    pub answered: Option<Answered<RouteVerdict>>,
}

impl<'a> Router<'a> {
    pub async fn route(
        mut self,
        exchange: &str,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Decision, BrokerError> {
        let start = Instant::now();
        let ex = self
            .topology
            .exchange(exchange)
            .ok_or_else(|| BrokerError::ExchangeNotFound(exchange.to_owned()))?;
        if ex.internal {
            return Err(BrokerError::InternalExchange(exchange.to_owned()));
        }
        let alternate = ex
            .alternate_exchange
            .as_deref()
            .and_then(|a| self.topology.exchange(a));
        // The original is kept only for an alternate exchange: a copy costs an allocation per
        // header.
        let kept = alternate.map(|_| message.clone());
        self.enter(ex, routing_key, message, 0).await;
        let nothing =
            |d: &Decision| d.outputs.is_empty() && d.dropped.is_none() && d.rejected.is_none();
        if nothing(&self.decision) {
            if let (Some(alt), Some(message)) = (alternate, kept) {
                self.enter(alt, routing_key, message, 1).await;
            }
        }
        if nothing(&self.decision) {
            self.decision.unroutable = true;
            self.decision.returned = mandatory;
        }
        if self.decision.rejected.is_some() {
            self.decision.outputs.clear();
        }
        self.decision.elapsed = start.elapsed();
        Ok(self.decision)
    }

    /// Boxed: exchange-to-exchange hops make routing recursive.
    fn enter<'s>(
        &'s mut self,
        ex: &'a Exchange,
        key: &'s str,
        message: Message,
        hops: usize,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 's>>
    where
        'a: 's,
    {
        Box::pin(async move { self.enter_now(ex, key, message, hops).await })
    }

    async fn enter_now(&mut self, ex: &'a Exchange, key: &str, message: Message, hops: usize) {
        if hops > MAX_HOPS || self.decision.rejected.is_some() {
            return;
        }
        let Some(message) = self.pipeline(ex, key, message).await else {
            return;
        };
        if ex.name.is_empty() {
            // The default exchange: every queue is bound to it by its own name.
            if self.queues.exists(key) && self.seen.insert(key.to_owned()) {
                self.push(key, message, None, None);
            }
            return;
        }
        if let ExchangeKind::Wasm { plugin } = &ex.kind {
            return self.route_by_plugin(ex, plugin, key, message, hops).await;
        }
        let bindings: Vec<_> = self.topology.matching(ex, key, &message).cloned().collect();
        let last = bindings.len().saturating_sub(1);
        let mut original = Some(message);
        for (i, binding) in bindings.into_iter().enumerate() {
            let Some(message) = original.as_ref() else {
                break;
            };
            if let Some(filter) = &binding.filter {
                let (ctx, dry_run) = (context(ex, key), self.dry_run);
                let at = At {
                    ex,
                    role: "binding-filter",
                    key,
                    message,
                };
                let call = async |p: &Serving| p.filter(message, &ctx, dry_run).await;
                match self.call(at, filter, call).await {
                    Called::Ok(true, _) => {}
                    Called::Ok(false, _) | Called::Handled => continue,
                }
            }
            // The last binding gets the message itself, the others a copy.
            let copy = |original: &mut Option<Message>| match i == last {
                true => original.take().expect("taken only at the last binding"),
                false => original.clone().expect("taken only at the last binding"),
            };
            match &binding.target {
                BindingTarget::Queue(q) => {
                    if self.seen.insert(q.clone()) {
                        self.push(q, copy(&mut original), None, None);
                    }
                }
                BindingTarget::Exchange(name) => {
                    if let Some(next) = self.topology.exchange(name) {
                        self.enter(next, key, copy(&mut original), hops + 1).await;
                    }
                }
            }
        }
    }

    /// Run the exchange's filters and transforms in order. `None`: the message stops here.
    async fn pipeline(
        &mut self,
        ex: &Exchange,
        key: &str,
        mut message: Message,
    ) -> Option<Message> {
        if ex.pipeline.is_empty() {
            return Some(message);
        }
        let (ctx, dry_run) = (context(ex, key), self.dry_run);
        for name in &ex.pipeline {
            let kind = self.plugins.serving(name).map(|p| p.kind());
            let (m, c) = (&message, &ctx);
            let at = |role| At {
                ex,
                role,
                key,
                message: m,
            };
            match kind {
                Ok(PluginKind::Transform) => {
                    let call = async |p: &Serving| p.transform(m, c, dry_run).await;
                    match self.call(at("transform"), name, call).await {
                        Called::Ok(out, by) => message = stamp(out, by.lineage()),
                        Called::Handled => return None,
                    }
                }
                _ => match self
                    .call(at("filter"), name, async |p: &Serving| {
                        p.filter(m, c, dry_run).await
                    })
                    .await
                {
                    Called::Ok(true, _) => {}
                    Called::Ok(false, _) => {
                        self.decision.dropped = Some(format!("filtered by {name}"));
                        return None;
                    }
                    Called::Handled => return None,
                },
            }
        }
        Some(message)
    }

    async fn route_by_plugin(
        &mut self,
        ex: &'a Exchange,
        plugin: &str,
        key: &str,
        message: Message,
        hops: usize,
    ) {
        let dry_run = self.dry_run;
        let at = At {
            ex,
            role: "router",
            key,
            message: &message,
        };
        let answered = if hops == 0 {
            self.answered.take()
        } else {
            None
        };
        let called = match answered {
            // Answered by a batch call: the steps of a call, without making one.
            Some(a) => match self.admit(at, plugin, Ok(a.serving)) {
                Some(serving) => self.settle(at, serving, a.result, a.elapsed, Vec::new()),
                None => Called::Handled,
            },
            // The context is made only for a call: an answered step needs none.
            None => {
                let call =
                    async |p: &Serving| p.route(at.message, &context(ex, key), dry_run).await;
                self.call(at, plugin, call).await
            }
        };
        let (verdict, by) = match called {
            Called::Ok(v, by) => (v, by),
            Called::Handled => return,
        };
        let lineage = by.lineage();
        match verdict {
            RouteVerdict::Drop => self.decision.dropped = Some(format!("dropped by {plugin}")),
            RouteVerdict::Deliver(dests) if dests.is_empty() => {
                self.decision.dropped = Some(format!("{plugin} chose no destination"));
            }
            RouteVerdict::DeadLetter { reason } => {
                let m = stamp(message, lineage);
                self.dead_letter(m, ex, key, format!("{plugin}: {reason}"));
            }
            RouteVerdict::Deliver(dests) => {
                let last = dests.len() - 1;
                let mut original = Some(message);
                for (i, dest) in dests.into_iter().enumerate() {
                    // The last destination that wants the original gets it, not a copy.
                    let copy = match dest.message {
                        Some(replacement) => *replacement,
                        None if i == last => original.take().expect("taken only here"),
                        None => original.clone().expect("taken only at the last"),
                    };
                    let copy = stamp(copy, lineage);
                    match dest.target {
                        Target::Queue(q) if self.queues.exists(&q) => {
                            self.push(q, copy, dest.delay_ms, None)
                        }
                        Target::Queue(q) => self.dead_letter(
                            copy,
                            ex,
                            key,
                            format!("{plugin} routed to missing queue {q:?}"),
                        ),
                        Target::Exchange { name, routing_key } => {
                            match self.topology.exchange(&name) {
                                Some(next) => self.enter(next, &routing_key, copy, hops + 1).await,
                                None => self.dead_letter(
                                    copy,
                                    ex,
                                    key,
                                    format!("{plugin} routed to missing exchange {name:?}"),
                                ),
                            }
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, ex: &Exchange, key: &str, message: Message, reason: String) {
        match &ex.failure_policy {
            FailurePolicy::DeadLetter => self.dead_letter(message, ex, key, reason),
            FailurePolicy::Reject => self.decision.rejected = Some(reason),
            FailurePolicy::Drop => self.decision.dropped = Some(reason),
            FailurePolicy::Fallback { queue } => {
                let mut m = message;
                mark_origin(&mut m, &ex.name, key, &reason);
                self.push(queue, m, None, Some(reason));
            }
        }
    }

    fn dead_letter(&mut self, mut message: Message, ex: &Exchange, key: &str, reason: String) {
        mark_origin(&mut message, &ex.name, key, &reason);
        let q = self.special.dead_letter.clone();
        self.push(&q, message, None, Some(reason));
    }

    /// `queue` by value: a router's verdict hands over the name it owns.
    fn push(
        &mut self,
        queue: impl Into<String>,
        message: Message,
        delay_ms: Option<u64>,
        reason: Option<String>,
    ) {
        self.decision.outputs.push(Output {
            queue: queue.into(),
            message,
            delay_ms,
            reason,
        });
    }
}

/// Add a version's lineage entry (`plugin@version`) to the message's lineage: a shared string,
/// as this runs on every message a plugin routes (see `message::Lineage`).
fn stamp(mut message: Message, entry: &Arc<str>) -> Message {
    message.lineage.push(entry);
    message
}

/// What a plugin called during a publish learns about where the message is.
pub(super) fn context(ex: &Exchange, key: &str) -> RouteContext {
    RouteContext {
        exchange: ex.name.to_string(),
        routing_key: key.to_owned(),
        delivery_count: 0,
        source: "publish".into(),
    }
}

/// Record why and from where a message left the normal route.
pub(super) fn mark_origin(message: &mut Message, exchange: &str, key: &str, reason: &str) {
    message.headers.insert(REASON_HEADER.into(), reason.into());
    message
        .headers
        .insert(EXCHANGE_HEADER.into(), exchange.into());
    message
        .headers
        .insert(ROUTING_KEY_HEADER.into(), key.into());
}
