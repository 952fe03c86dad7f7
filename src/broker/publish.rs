//! The publish path: route (plugins included) and apply in one step, then wait for
//! durability; dry runs share the routing code and store nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Instrument;

use super::{Broker, BrokerError, Decision};
use crate::message::{Message, MAX_NESTING};
use crate::queue::{self, EnqueueOptions, PublishItem, PublishOutcome, QueueName};

/// What a committed publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The routing decision. Its outputs' messages went to the store: each keeps its id, and
    /// its headers, properties and body are empty (a [dry run](Broker::dry_run) has them all).
    pub decision: Decision,
    /// Per output, what its queue did with it (stored, duplicate, refused as full).
    pub outcomes: Vec<PublishOutcome>,
}

impl Published {
    /// A queue refused its copy because it is full (`reject-publish` overflow): an AMQP
    /// publisher with confirms gets a nack.
    pub fn any_refused(&self) -> bool {
        any_refused(&self.outcomes)
    }
}

fn any_refused(outcomes: &[PublishOutcome]) -> bool {
    outcomes.contains(&PublishOutcome::RejectedMaxLength)
}

/// A publish that is routed and applied, not yet known to be durable.
#[derive(Debug)]
pub struct Submitted {
    decision: Decision,
    pending: Option<queue::StorePending>,
}

impl Submitted {
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The store is behind its relaxed writes: a publisher that does not wait for confirms
    /// should await [`durable`](Submitted::durable) anyway (see [`queue::StorePending::paced`]).
    pub fn paced(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(queue::StorePending::paced)
    }

    /// What a publisher confirm waits for, without the decision: see [`Confirmation`].
    pub fn confirmation(self) -> Confirmation {
        Confirmation {
            pending: self.pending,
        }
    }

    /// Waits until every output is durable (group commit).
    pub async fn durable(self) -> Result<Published, BrokerError> {
        let outcomes = match self.pending {
            Some(pending) => pending.durable().await?.outcomes,
            None => Vec::new(),
        };
        Ok(Published {
            decision: self.decision,
            outcomes,
        })
    }
}

/// A publish applied and awaiting its flush, holding only what its confirm needs.
///
/// Why not [`Submitted::durable`]: an AMQP publisher with confirms keeps hundreds of publishes
/// in flight and reads nothing of their decisions, and a decision kept until its flush lands is
/// out of cache by then, so dropping it costs misses (a plugin step's record, dropped after the
/// flush, cost the routing bench ~0.2 µs per message). Taken right after routing, the decision
/// is dropped while it is still in cache, and an in-flight publish holds a few words.
#[derive(Debug)]
pub struct Confirmation {
    pending: Option<queue::StorePending>,
}

impl Confirmation {
    /// Waits until every output is durable: `true` if every queue took its copy, `false` if one
    /// refused it as full (`reject-publish` overflow: an AMQP publisher gets a nack).
    pub async fn acked(self) -> Result<bool, BrokerError> {
        Ok(match self.pending {
            Some(pending) => !any_refused(&pending.durable().await?.outcomes),
            None => true,
        })
    }
}

/// Counters for the admin API and metrics.
#[derive(Debug, Default)]
pub struct BrokerCounters {
    pub published: AtomicU64,
    pub unroutable: AtomicU64,
    pub returned: AtomicU64,
    pub dropped: AtomicU64,
    pub rejected: AtomicU64,
}

impl Broker {
    /// Route without side effects: the full decision, nothing stored, breakers untouched.
    pub async fn dry_run(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
    ) -> Result<Decision, BrokerError> {
        self.decide(exchange, routing_key, message, false, true)
            .await
    }

    /// Route and commit. Returns once every output is durable; an error means nothing was
    /// stored. A decision that rejects the publish is [`BrokerError::Rejected`].
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Published, BrokerError> {
        // One span per message, at debug level so it costs nothing unless asked for
        // (`RUST_LOG=switchyard::broker=debug`).
        let span = tracing::debug_span!(
            "publish",
            message_id = %message.id.as_str(),
            exchange,
            routing_key,
        );
        async {
            self.submit(exchange, routing_key, message, mandatory)
                .await?
                .durable()
                .await
        }
        .instrument(span)
        .await
    }

    /// Route and apply, without waiting for durability: when this returns, the publish's
    /// outputs are in their queues (in the order of `submit` calls that were awaited one after
    /// the other) and [`Submitted::durable`] resolves once they are on disk. Publishers that
    /// keep many publishes in flight (AMQP confirms) use it so that they share flushes.
    pub async fn submit(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
        mandatory: bool,
    ) -> Result<Submitted, BrokerError> {
        // Boxed: routing's future is kilobytes, and every `async fn` that awaits it inline (the
        // AMQP channel's publish, the connection's) would grow by as much and copy it on each
        // publish; one allocation costs less than those copies.
        let decision =
            Box::pin(self.decide(exchange, routing_key, message, mandatory, false)).await?;
        self.routed(decision, exchange, routing_key)
    }

    /// A routed publish: its steps counted, then [applied](Broker::apply).
    fn routed(
        &self,
        decision: Decision,
        exchange: &str,
        routing_key: &str,
    ) -> Result<Submitted, BrokerError> {
        self.verdicts.record(&decision);
        self.apply(decision, exchange, routing_key)
    }

    /// Plugin calls run here, on the caller's task: a warm call takes microseconds and
    /// completes within one poll, and a long one yields to the executor at every epoch tick
    /// (see `plugin::PluginHost`), so no route needs a hop to another thread.
    async fn decide(
        &self,
        exchange: &str,
        routing_key: &str,
        message: Message,
        mandatory: bool,
        dry_run: bool,
    ) -> Result<Decision, BrokerError> {
        refuse_deep(&message)?;
        let topology = self.topology();
        self.core
            .router(&topology, dry_run)
            .route(exchange, routing_key, message, mandatory)
            .await
    }

    /// A routed publish whose steps are counted: logged (at debug level), then committed to
    /// its queues, or refused.
    pub(super) fn apply(
        &self,
        mut decision: Decision,
        exchange: &str,
        routing_key: &str,
    ) -> Result<Submitted, BrokerError> {
        tracing::debug!(
            verdicts = ?decision
                .steps
                .iter()
                .map(|s| format!("{}@{}: {}", s.plugin, s.version, s.outcome))
                .collect::<Vec<_>>(),
            destinations = ?decision.queues().collect::<Vec<_>>(),
            dropped = ?decision.dropped,
            rejected = ?decision.rejected,
            "routed"
        );
        let c = &self.counters;
        c.published.fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = &decision.rejected {
            c.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(BrokerError::Rejected(reason.clone()));
        }
        if decision.unroutable {
            c.unroutable.fetch_add(1, Ordering::Relaxed);
        }
        if decision.returned {
            c.returned.fetch_add(1, Ordering::Relaxed);
        }
        if decision.dropped.is_some() {
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let mut items = Vec::with_capacity(decision.outputs.len());
        for out in &mut decision.outputs {
            items.push(PublishItem {
                queue: QueueName::new(out.queue.clone())?,
                message: out.message.hand_over(),
                options: EnqueueOptions {
                    delay_ms: out.delay_ms,
                    exchange: exchange.to_owned(),
                    routing_keys: vec![routing_key.to_owned()],
                    ..EnqueueOptions::default()
                },
            });
        }
        let pending = if items.is_empty() {
            None
        } else {
            Some(self.queues().enqueue(items)?)
        };
        Ok(Submitted { decision, pending })
    }
}

/// Refused before any plugin or queue sees it: the queues could not store it
/// (`CodecError::TooDeep`), and a client's error beats an internal one.
pub(super) fn refuse_deep(message: &Message) -> Result<(), BrokerError> {
    let depth = message.header_nesting();
    if depth > MAX_NESTING {
        return Err(BrokerError::Rejected(format!(
            "header values nest {depth} levels deep; at most {MAX_NESTING} are accepted"
        )));
    }
    Ok(())
}
