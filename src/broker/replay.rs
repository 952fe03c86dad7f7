//! Replaying dead-lettered and quarantined messages through routing again, after a fix.

use super::{Broker, BrokerError, EXCHANGE_HEADER, REASON_HEADER, ROUTING_KEY_HEADER};
use crate::queue::{ConsumerOptions, QueueName};

impl Broker {
    /// Send up to `limit` messages of `queue` (a dead-letter or quarantine queue) through
    /// routing again, from the exchange and routing key they were first published with — so a
    /// fixed or rolled-back plugin decides anew. Each message is acknowledged in `queue` only
    /// after its new routing is durable. Messages with no recorded origin stay where they are.
    /// Returns how many were replayed.
    pub async fn replay(
        &self,
        queue: &QueueName,
        limit: Option<usize>,
    ) -> Result<usize, BrokerError> {
        let _one_at_a_time = self.replay_lock.lock().await;
        // Bound the pass by what the queue holds now: a message that routes back into this
        // queue (a breaker still open) must not be replayed again in the same pass.
        let held = usize::try_from(self.queues().stats(queue)?.messages).unwrap_or(usize::MAX);
        let budget = limit.map_or(held, |l| l.min(held));
        let mut consumer = self
            .queues()
            .consume(
                queue,
                ConsumerOptions {
                    prefetch: 0,
                    push: false,
                },
            )
            .await?;
        let mut done = 0;
        let mut skipped = Vec::new();
        while done + skipped.len() < budget {
            let Some(delivery) = consumer.next_ready().await? else {
                break;
            };
            let mut message = delivery.message;
            let origin = (
                message.headers.remove(EXCHANGE_HEADER),
                message.headers.remove(ROUTING_KEY_HEADER),
            );
            let (Some(ex), Some(key)) = origin else {
                skipped.push(delivery.tag);
                continue;
            };
            message.headers.remove(REASON_HEADER);
            let (ex, key) = (
                ex.as_str().unwrap_or("").to_owned(),
                key.as_str().unwrap_or("").to_owned(),
            );
            self.publish(&ex, &key, message, false).await?;
            consumer.ack(delivery.tag, false).await?;
            done += 1;
        }
        for tag in skipped {
            consumer.nack(tag, false, true).await?;
        }
        Ok(done)
    }

    /// Close every circuit breaker of `plugin` and replay the quarantine queue.
    pub async fn release_quarantine(&self, plugin: &str) -> Result<usize, BrokerError> {
        self.core.breakers.reset(plugin);
        let q = QueueName::new(self.core.special.quarantine.clone())?;
        self.replay(&q, None).await
    }
}
