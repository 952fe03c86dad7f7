//! Dispatch of the channel methods that call the broker, and channel teardown.

use amq_protocol::protocol::AMQPClass;

use super::channel::Channel;
use super::error::AmqpError;

impl Channel {
    pub(crate) async fn broker_method(&mut self, method: AMQPClass) -> Result<(), AmqpError> {
        match method {
            AMQPClass::Exchange(m) => self.exchange_method(m).await,
            AMQPClass::Queue(m) => self.queue_method(m).await,
            AMQPClass::Basic(m) => self.basic_method(m).await,
            other => Err(AmqpError::command_invalid(format!(
                "unexpected method {}.{}",
                other.get_amqp_class_id(),
                other.get_amqp_method_id()
            ))),
        }
    }

    /// Stop consumers (their unacked messages return to their queues), drop pull consumers
    /// and stop confirming. Used on `channel.close`, channel exceptions and connection end.
    pub(crate) async fn reset(&mut self) {
        let tags: Vec<String> = self.consumers.keys().cloned().collect();
        for tag in tags {
            self.cancel(&tag).await;
        }
        self.getters.clear();
        self.confirms = None;
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        for handle in self.consumers.values() {
            handle.abort();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}
