//! `exchange.*` and `queue.*` methods: topology changes through the broker.
//!
//! Differences from RabbitMQ, on purpose or for now (see the README):
//! - every queue and exchange is stored durably; `durable = false` is accepted and kept as a
//!   flag only;
//! - queue names are restricted to `[A-Za-z0-9._:-]` (406 otherwise);
//! - exclusive queues are owned by their connection and deleted when it closes; auto-delete
//!   queues are deleted when their last consumer on this server is cancelled.

use amq_protocol::protocol::{exchange, queue, AMQPClass};

use super::args::{broker_error, queue_config, queue_error, string_arg};
use super::channel::Channel;
use super::convert::{headers_from_table, short};
use super::error::AmqpError;
use crate::auth::{Access, Resource};
use crate::message::Headers;
use crate::queue::{ConsumerOptions, QueueName};
use crate::routing::{Binding, BindingTarget, Exchange, ExchangeKind, FailurePolicy};

impl Channel {
    pub(crate) async fn exchange_method(
        &mut self,
        m: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let broker = self.shared.broker.clone();
        match m {
            exchange::AMQPMethod::Declare(d) => {
                let name = d.exchange.as_str();
                let args = headers_from_table(&d.arguments);
                if d.passive {
                    if name.is_empty() || broker.topology().exchange(name).is_some() {
                        return self
                            .reply_unless(d.nowait, exchange_ok(ExOk::Declare))
                            .await;
                    }
                    return Err(AmqpError::not_found(format!(
                        "no exchange '{name}' in vhost '/'"
                    )));
                }
                if name.starts_with("amq.") || name.is_empty() {
                    let exists = broker.topology().exchange(name).is_some();
                    if !exists {
                        return Err(AmqpError::access_refused(format!(
                            "exchange name '{name}' contains reserved prefix 'amq.'"
                        )));
                    }
                }
                self.authorize(Access::Configure, Resource::Exchange(name))?;
                let kind = exchange_kind(d.kind.as_str(), &args, &broker)?;
                let mut ex = Exchange::new(name, kind);
                ex.durable = d.durable;
                ex.auto_delete = d.auto_delete;
                ex.internal = d.internal;
                ex.alternate_exchange = string_arg(&args, "alternate-exchange")?;
                ex.failure_policy = failure_policy(&args)?;
                ex.arguments = args;
                broker.declare_exchange(ex).map_err(broker_error)?;
                self.reply_unless(d.nowait, exchange_ok(ExOk::Declare))
                    .await
            }
            exchange::AMQPMethod::Delete(d) => {
                self.authorize(Access::Configure, Resource::Exchange(d.exchange.as_str()))?;
                match broker.delete_exchange(d.exchange.as_str(), d.if_unused) {
                    Ok(()) => {}
                    // RabbitMQ: deleting an exchange that does not exist succeeds.
                    Err(crate::broker::BrokerError::Topology(
                        crate::routing::TopologyError::NoSuchExchange(_),
                    )) => {}
                    Err(e) => return Err(broker_error(e)),
                }
                self.reply_unless(d.nowait, exchange_ok(ExOk::Delete)).await
            }
            exchange::AMQPMethod::Bind(b) => {
                self.authorize_binding(
                    b.source.as_str(),
                    Resource::Exchange(b.destination.as_str()),
                )?;
                let binding = self.binding(
                    b.source.as_str(),
                    BindingTarget::Exchange(b.destination.as_str().to_owned()),
                    b.routing_key.as_str(),
                    headers_from_table(&b.arguments),
                )?;
                if broker.topology().exchange(b.destination.as_str()).is_none() {
                    return Err(AmqpError::not_found(format!(
                        "no exchange '{}' in vhost '/'",
                        b.destination
                    )));
                }
                broker.bind(binding).map_err(broker_error)?;
                self.reply_unless(b.nowait, exchange_ok(ExOk::Bind)).await
            }
            exchange::AMQPMethod::Unbind(u) => {
                self.authorize_binding(
                    u.source.as_str(),
                    Resource::Exchange(u.destination.as_str()),
                )?;
                let binding = self.binding(
                    u.source.as_str(),
                    BindingTarget::Exchange(u.destination.as_str().to_owned()),
                    u.routing_key.as_str(),
                    headers_from_table(&u.arguments),
                )?;
                broker.unbind(&binding).map_err(broker_error)?;
                self.reply_unless(u.nowait, exchange_ok(ExOk::Unbind)).await
            }
            _ => Err(AmqpError::command_invalid("unexpected exchange method")),
        }
    }

    fn binding(
        &self,
        source: &str,
        target: BindingTarget,
        key: &str,
        mut arguments: Headers,
    ) -> Result<Binding, AmqpError> {
        if source.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        let filter = string_arg(&arguments, "x-filter")?;
        arguments.remove("x-filter");
        Ok(Binding {
            source: source.to_owned(),
            target,
            routing_key: key.to_owned(),
            arguments,
            filter,
        })
    }

    async fn reply_unless(&self, nowait: bool, method: AMQPClass) -> Result<(), AmqpError> {
        if nowait {
            Ok(())
        } else {
            self.send(method).await
        }
    }

    /// A queue name from the wire; `""` means the channel's last declared queue.
    pub(crate) fn queue_name(&self, name: &str) -> Result<QueueName, AmqpError> {
        if name.is_empty() {
            return self.last_queue.clone().ok_or_else(|| {
                AmqpError::not_found("no queue name given and no queue declared on this channel")
            });
        }
        QueueName::new(name).map_err(|e| AmqpError::precondition_failed(e.to_string()))
    }

    pub(crate) async fn queue_method(&mut self, m: queue::AMQPMethod) -> Result<(), AmqpError> {
        let broker = self.shared.broker.clone();
        match m {
            queue::AMQPMethod::Declare(d) => {
                let name = if d.queue.as_str().is_empty() {
                    QueueName::new(format!("amq.gen-{}", crate::message::MessageId::generate()))
                        .map_err(queue_error)?
                } else {
                    if d.queue.as_str().starts_with("amq.") && !d.passive {
                        return Err(AmqpError::access_refused(format!(
                            "queue name '{}' contains reserved prefix 'amq.*'",
                            d.queue
                        )));
                    }
                    self.queue_name(d.queue.as_str())?
                };
                self.check_owner(&name)?;
                if !d.passive {
                    self.authorize(Access::Configure, Resource::Queue(name.as_str()))?;
                    let args = headers_from_table(&d.arguments);
                    let config = queue_config(&broker, &args).await?;
                    broker.declare_queue(&name, config).map_err(broker_error)?;
                    if d.exclusive {
                        self.shared
                            .exclusive
                            .lock()
                            .entry(name.clone())
                            .or_insert(self.conn);
                    }
                    if d.auto_delete {
                        self.shared.auto_delete.lock().insert(name.clone());
                    }
                }
                let stats = broker.queues().stats(&name).map_err(queue_error)?;
                self.last_queue = Some(name.clone());
                let ok = queue::DeclareOk {
                    queue: short(name.as_str()),
                    message_count: ready(&stats),
                    consumer_count: u32::try_from(stats.consumers).unwrap_or(u32::MAX),
                };
                self.reply_unless(d.nowait, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)))
                    .await
            }
            queue::AMQPMethod::Bind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                self.check_owner(&name)?;
                self.authorize_binding(b.exchange.as_str(), Resource::Queue(name.as_str()))?;
                broker.queues().stats(&name).map_err(queue_error)?;
                let binding = self.binding(
                    b.exchange.as_str(),
                    BindingTarget::Queue(name.to_string()),
                    b.routing_key.as_str(),
                    headers_from_table(&b.arguments),
                )?;
                broker.bind(binding).map_err(broker_error)?;
                let ok = AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {}));
                self.reply_unless(b.nowait, ok).await
            }
            queue::AMQPMethod::Unbind(u) => {
                let name = self.queue_name(u.queue.as_str())?;
                self.check_owner(&name)?;
                self.authorize_binding(u.exchange.as_str(), Resource::Queue(name.as_str()))?;
                let binding = self.binding(
                    u.exchange.as_str(),
                    BindingTarget::Queue(name.to_string()),
                    u.routing_key.as_str(),
                    headers_from_table(&u.arguments),
                )?;
                broker.unbind(&binding).map_err(broker_error)?;
                self.send(AMQPClass::Queue(queue::AMQPMethod::UnbindOk(
                    queue::UnbindOk {},
                )))
                .await
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                self.check_owner(&name)?;
                self.authorize(Access::Read, Resource::Queue(name.as_str()))?;
                let n = purge(&broker, &name)?;
                let ok = queue::PurgeOk { message_count: n };
                self.reply_unless(p.nowait, AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok)))
                    .await
            }
            queue::AMQPMethod::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                self.check_owner(&name)?;
                self.authorize(Access::Configure, Resource::Queue(name.as_str()))?;
                let n = match broker.queues().stats(&name) {
                    // RabbitMQ: deleting a queue that does not exist succeeds.
                    Err(_) => 0,
                    Ok(stats) => {
                        if d.if_unused && stats.consumers > 0 {
                            return Err(AmqpError::precondition_failed(format!(
                                "queue '{name}' in vhost '/' in use"
                            )));
                        }
                        if d.if_empty && stats.messages > 0 {
                            return Err(AmqpError::precondition_failed(format!(
                                "queue '{name}' in vhost '/' is not empty"
                            )));
                        }
                        self.getters.remove(&name);
                        let n = broker.delete_queue(&name).map_err(broker_error)?;
                        self.shared.forget_queue(&name);
                        u32::try_from(n).unwrap_or(u32::MAX)
                    }
                };
                let ok = queue::DeleteOk { message_count: n };
                self.reply_unless(d.nowait, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)))
                    .await
            }
            _ => Err(AmqpError::command_invalid("unexpected queue method")),
        }
    }

    /// 405 when `queue` is exclusive to another connection.
    pub(crate) fn check_owner(&self, queue: &QueueName) -> Result<(), AmqpError> {
        match self.shared.exclusive.lock().get(queue) {
            Some(owner) if *owner != self.conn => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{queue}' in vhost '/'"
            ))),
            _ => Ok(()),
        }
    }
}

/// Messages ready for delivery (RabbitMQ's `message_count`).
pub(crate) fn ready(stats: &crate::queue::QueueStats) -> u32 {
    let n = stats.messages.saturating_sub(stats.unacked + stats.delayed);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Remove every ready message. The engine has no purge, so this takes and acknowledges them
/// through a pull consumer; messages in flight to consumers stay (as in RabbitMQ).
fn purge(broker: &crate::broker::Broker, queue: &QueueName) -> Result<u32, AmqpError> {
    let consumer = broker
        .queues()
        .embedded()
        .map_err(queue_error)?
        .consume(
            queue,
            ConsumerOptions {
                prefetch: 0,
                push: false,
            },
        )
        .map_err(queue_error)?;
    let mut n = 0u32;
    while let Some(d) = consumer.get().map_err(queue_error)? {
        consumer.ack(d.tag, false).map_err(queue_error)?;
        n = n.saturating_add(1);
    }
    Ok(n)
}

enum ExOk {
    Declare,
    Delete,
    Bind,
    Unbind,
}

fn exchange_ok(which: ExOk) -> AMQPClass {
    AMQPClass::Exchange(match which {
        ExOk::Declare => exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
        ExOk::Delete => exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
        ExOk::Bind => exchange::AMQPMethod::BindOk(exchange::BindOk {}),
        ExOk::Unbind => exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
    })
}

fn exchange_kind(
    kind: &str,
    args: &Headers,
    broker: &crate::broker::Broker,
) -> Result<ExchangeKind, AmqpError> {
    Ok(match kind {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        "x-wasm" => {
            let Some(plugin) = string_arg(args, "x-plugin")? else {
                return Err(AmqpError::precondition_failed(
                    "an x-wasm exchange needs the argument x-plugin naming a router plugin",
                ));
            };
            if broker.plugins().current(&plugin).is_none() {
                return Err(AmqpError::not_found(format!(
                    "no plugin named '{plugin}' is deployed"
                )));
            }
            ExchangeKind::Wasm { plugin }
        }
        other => {
            return Err(AmqpError::command_invalid(format!(
                "unknown exchange type '{other}'"
            )))
        }
    })
}

/// `x-failure-policy`: `dead-letter` (default), `reject`, `drop` or `fallback:<queue>`.
fn failure_policy(args: &Headers) -> Result<FailurePolicy, AmqpError> {
    Ok(match string_arg(args, "x-failure-policy")?.as_deref() {
        None | Some("dead-letter") => FailurePolicy::DeadLetter,
        Some("reject") => FailurePolicy::Reject,
        Some("drop") => FailurePolicy::Drop,
        Some(other) => match other.strip_prefix("fallback:") {
            Some(queue) => FailurePolicy::Fallback {
                queue: queue.to_owned(),
            },
            None => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid arg 'x-failure-policy': {other:?}"
                )))
            }
        },
    })
}
