//! One AMQP channel: its state machine, content assembly and method dispatch.
//!
//! Content assembly: `basic.publish` is followed by exactly one content header and as many
//! body frames as the header's `body-size` needs. Any other frame on the channel in between
//! is 505 UNEXPECTED_FRAME; a body beyond the declared size is 501 FRAME_ERROR. A declared
//! size above [`ServerConfig::max_body`](super::ServerConfig::max_body), or more header entries
//! than [`ServerConfig::max_header_count`](super::ServerConfig::max_header_count), is 406
//! PRECONDITION_FAILED on the channel (as RabbitMQ answers an oversize message). The body
//! buffer is allocated as frames arrive, never from the declared size, so a lying header
//! cannot make us allocate.
//!
//! A channel exception (404, 403, 405, 406) sends `channel.close` and puts the channel in the
//! closing state, where every frame but `close`/`close-ok` is dropped (as the spec says).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, confirm, AMQPClass};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::codec::Inbound;
use super::connection::Tuned;
use super::consume::{ConsumerHandle, Tags};
use super::content::Header;
use super::convert::short;
use super::error::{AmqpError, Scope};
use super::outbound::{Gone, Outbound};
use super::publish::Confirm;
use super::server::Shared;
use crate::auth::{refusal, Access, Permissions, Resource};
use crate::queue::{Consumer, QueueName};

/// What the connection should do with the channel after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Keep,
    Closed,
}

/// A publish whose content is being received.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub method: basic::Publish,
    pub header: Option<Header>,
    pub body: Vec<u8>,
}

/// What a frame on the publish path came to ([`Channel::accept`]).
#[derive(Debug)]
pub(crate) enum Accept {
    /// Taken into the message being received; nothing else to do until its next frame.
    Buffered,
    /// The message is whole: [`publish_incoming`](Channel::publish_incoming) it.
    Complete(Incoming),
    /// A channel exception: [`on_result`](Channel::on_result) turns it into `channel.close`.
    Failed(AmqpError),
    /// Not a publish-path frame, or the channel is closing: [`handle`](Channel::handle) it.
    Other(Inbound),
}

#[derive(Debug)]
pub struct Channel {
    pub(crate) id: u16,
    pub(crate) shared: Arc<Shared>,
    pub(crate) out: Outbound,
    /// `channel.close` was sent; waiting for `close-ok`.
    closing: bool,
    incoming: Option<Incoming>,
    /// `confirm.select` was received.
    pub(crate) confirm: bool,
    /// Prefetch for consumers started from now on (`basic.qos`, per consumer).
    pub(crate) prefetch: u32,
    /// `channel.flow` state as last set by the client (acknowledged, not enforced).
    pub(crate) active: bool,
    /// The connection this channel belongs to (owner of exclusive queues).
    pub(crate) conn: u64,
    /// The last queue declared here: the queue an empty queue name means.
    pub(crate) last_queue: Option<QueueName>,
    /// Last publish sequence number handed out in confirm mode.
    pub(crate) publish_seq: u64,
    pub(crate) confirms: Option<mpsc::Sender<Confirm>>,
    pub(crate) tags: Arc<Mutex<Tags>>,
    pub(crate) consumers: HashMap<String, ConsumerHandle>,
    /// Pull consumers for `basic.get`, one per queue.
    pub(crate) getters: HashMap<QueueName, Consumer>,
    /// Queues this channel consumes exclusively.
    pub(crate) exclusive_consumers: HashSet<QueueName>,
    /// Background tasks (the confirmer) stopped with the channel.
    pub(crate) tasks: Vec<JoinHandle<()>>,
    /// The connection's user, and its permissions in the open vhost.
    pub(crate) user: String,
    permissions: Arc<Permissions>,
}

impl Channel {
    pub fn new(id: u16, conn: u64, shared: Arc<Shared>, out: Outbound, tuned: &Tuned) -> Channel {
        let prefetch = shared.config.default_prefetch;
        Channel {
            id,
            shared,
            out,
            closing: false,
            incoming: None,
            confirm: false,
            prefetch,
            active: true,
            conn,
            last_queue: None,
            publish_seq: 0,
            confirms: None,
            tags: Arc::default(),
            consumers: HashMap::new(),
            getters: HashMap::new(),
            exclusive_consumers: HashSet::new(),
            tasks: Vec::new(),
            user: tuned.user.clone(),
            permissions: tuned.permissions.clone(),
        }
    }

    /// 403 ACCESS_REFUSED, in RabbitMQ's words, unless the user may do `access` to `resource`.
    pub(crate) fn authorize(
        &self,
        access: Access,
        resource: Resource<'_>,
    ) -> Result<(), AmqpError> {
        if self.permissions.allows(access, resource) {
            return Ok(());
        }
        Err(AmqpError::access_refused(refusal(
            access, resource, &self.user, "/",
        )))
    }

    /// A binding writes to its destination and reads from its source exchange.
    pub(crate) fn authorize_binding(
        &self,
        source: &str,
        destination: Resource<'_>,
    ) -> Result<(), AmqpError> {
        self.authorize(Access::Write, destination)?;
        self.authorize(Access::Read, Resource::Exchange(source))
    }

    pub async fn open_ok(&self) -> Result<(), AmqpError> {
        let ok = AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}));
        self.send(ok).await
    }

    pub(crate) async fn send(&self, method: AMQPClass) -> Result<(), AmqpError> {
        self.out.method(self.id, method).await.map_err(gone)
    }

    /// Handle one frame for this channel. Channel exceptions are handled here; connection
    /// exceptions are returned.
    pub(crate) async fn handle(&mut self, frame: Inbound) -> Result<Next, AmqpError> {
        let frame = match self.accept(frame) {
            Accept::Buffered => return Ok(Next::Keep),
            Accept::Complete(incoming) => {
                let result = self.publish_incoming(incoming).await;
                return self
                    .on_result(result.map(|()| Next::Keep).map_err(|e| e.on(60, 40)))
                    .await;
            }
            Accept::Failed(e) => return self.on_result(Err(e)).await,
            Accept::Other(Inbound::Header(..)) => return Ok(Next::Keep),
            Accept::Other(Inbound::Frame(frame)) => frame,
        };
        if self.closing {
            return Ok(match frame {
                AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                    Next::Closed
                }
                AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                    let ok = AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                    self.send(ok).await?;
                    Next::Closed
                }
                _ => Next::Keep,
            });
        }
        let result = match frame {
            AMQPFrame::Method(_, method) => {
                if self.incoming.is_some() {
                    Err(AmqpError::unexpected_frame(
                        "method frame while a message's content was expected",
                    ))
                } else {
                    let (class, method_id) =
                        (method.get_amqp_class_id(), method.get_amqp_method_id());
                    self.method(method)
                        .await
                        .map_err(|e| e.on(class, method_id))
                }
            }
            _ => Err(AmqpError::unexpected_frame("unexpected frame on a channel")),
        };
        self.on_result(result).await
    }

    /// Turn a channel exception into `channel.close`; pass connection exceptions on.
    pub(crate) async fn on_result(
        &mut self,
        result: Result<Next, AmqpError>,
    ) -> Result<Next, AmqpError> {
        match result {
            Err(e) if e.scope == Scope::Channel => {
                tracing::debug!(channel = self.id, error = %e, "amqp channel exception");
                self.closing = true;
                self.incoming = None;
                self.reset().await;
                let close = AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code: e.code,
                    reply_text: short(e.reply_text()),
                    class_id: e.class_id,
                    method_id: e.method_id,
                }));
                self.send(close).await?;
                Ok(Next::Keep)
            }
            other => other,
        }
    }

    async fn method(&mut self, method: AMQPClass) -> Result<Next, AmqpError> {
        match method {
            AMQPClass::Channel(m) => return self.channel_method(m).await,
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => {
                self.authorize(Access::Write, Resource::Exchange(p.exchange.as_str()))?;
                self.incoming = Some(Incoming {
                    method: p,
                    header: None,
                    body: Vec::new(),
                });
            }
            AMQPClass::Basic(basic::AMQPMethod::Qos(q)) => {
                if q.prefetch_count > 0 {
                    self.prefetch = q.prefetch_count.into();
                } else {
                    self.prefetch = self.shared.config.default_prefetch;
                }
                let ok = AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}));
                self.send(ok).await?;
            }
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.confirm = true;
                if !s.nowait {
                    let ok =
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}));
                    self.send(ok).await?;
                }
            }
            AMQPClass::Tx(_) => {
                return Err(AmqpError::not_implemented(
                    "transactions (tx class) are not supported",
                ))
            }
            AMQPClass::Access(_) => {
                return Err(AmqpError::not_implemented(
                    "the access class is not supported",
                ))
            }
            other => self.broker_method(other).await?,
        }
        Ok(Next::Keep)
    }

    async fn channel_method(&mut self, m: channel::AMQPMethod) -> Result<Next, AmqpError> {
        match m {
            channel::AMQPMethod::Close(_) => {
                self.reset().await;
                let ok = AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                self.send(ok).await?;
                Ok(Next::Closed)
            }
            channel::AMQPMethod::CloseOk(_) => Ok(Next::Keep),
            channel::AMQPMethod::Flow(f) => {
                self.active = f.active;
                let ok = AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                    active: f.active,
                }));
                self.send(ok).await?;
                Ok(Next::Keep)
            }
            channel::AMQPMethod::Open(_) => Err(AmqpError::channel_error(format!(
                "channel {} is already open",
                self.id
            ))),
            _ => Err(AmqpError::command_invalid("unexpected channel method")),
        }
    }

    /// The publish path without an `await`: `basic.publish` and its content frames only
    /// change this channel's state until the message is whole. Why it is separate from
    /// [`handle`](Channel::handle): an `async fn`'s future is as large as its largest branch
    /// (kilobytes here, for the declare and consume methods), and each `.await` on the way to
    /// a frame copies that much; three frames per message made those copies a fifth of the
    /// connection task's time. Frames this does not take come back as [`Accept::Other`].
    pub(crate) fn accept(&mut self, frame: Inbound) -> Accept {
        if self.closing {
            return Accept::Other(frame);
        }
        let done = match frame {
            Inbound::Header(_, h) => self.content_header(Header::Parsed(h)),
            Inbound::Frame(AMQPFrame::Header(_, h)) => self.content_header(Header::Amqp(h)),
            Inbound::Frame(AMQPFrame::Body(_, body)) => self.content_body(body),
            Inbound::Frame(AMQPFrame::Method(
                _,
                AMQPClass::Basic(basic::AMQPMethod::Publish(p)),
            )) if self.incoming.is_none() => {
                match self.authorize(Access::Write, Resource::Exchange(p.exchange.as_str())) {
                    Ok(()) => {
                        self.incoming = Some(Incoming {
                            method: p,
                            header: None,
                            body: Vec::new(),
                        });
                        Ok(None)
                    }
                    Err(e) => Err(e.on(60, 40)),
                }
            }
            other => return Accept::Other(other),
        };
        match done {
            Ok(None) => Accept::Buffered,
            Ok(Some(incoming)) => Accept::Complete(incoming),
            Err(e) => Accept::Failed(e),
        }
    }

    fn content_header(&mut self, header: Header) -> Result<Option<Incoming>, AmqpError> {
        let max = self.shared.config.max_body;
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "content header without basic.publish",
            ));
        };
        if incoming.header.is_some() {
            return Err(AmqpError::unexpected_frame(
                "second content header for one message",
            ));
        }
        if header.class_id() != 60 {
            return Err(AmqpError::frame_error(format!(
                "content header for class {}, expected 60",
                header.class_id()
            )));
        }
        // RabbitMQ's answer to an oversize message: a channel error, so the connection and
        // its other channels live on; the body frames that follow are dropped by the closing
        // channel without being buffered.
        if header.body_size() > max {
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {max}",
                header.body_size()
            ))
            .on(60, 40));
        }
        let limit = self.shared.config.max_header_count;
        let count = header.header_entries();
        if count > limit {
            return Err(AmqpError::precondition_failed(format!(
                "message has {count} header entries (nested tables and arrays included), \
                 more than the limit of {limit}"
            ))
            .on(60, 40));
        }
        // RabbitMQ's rule: a publisher cannot claim to be another user.
        if let Some(claimed) = header.user_id() {
            if claimed != self.user {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{claimed}' but authenticated user was '{}'",
                    self.user
                ))
                .on(60, 40));
            }
        }
        let empty = header.body_size() == 0;
        incoming.header = Some(header);
        Ok(if empty { self.incoming.take() } else { None })
    }

    fn content_body(&mut self, body: Vec<u8>) -> Result<Option<Incoming>, AmqpError> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "content body without basic.publish",
            ));
        };
        let Some(header) = &incoming.header else {
            return Err(AmqpError::unexpected_frame(
                "content body before its header",
            ));
        };
        let expected = header.body_size();
        let have = incoming.body.len() as u64 + body.len() as u64;
        if have > expected {
            return Err(AmqpError::frame_error(format!(
                "content body of at least {have} bytes, but the header said {expected}"
            )));
        }
        if incoming.body.is_empty() {
            // The usual case, one body frame: keep its buffer. Otherwise make room for the
            // whole body once (its size was checked against max-body with the header).
            incoming.body = body;
            if have < expected {
                incoming.body.reserve_exact((expected - have) as usize);
            }
        } else {
            incoming.body.extend_from_slice(&body);
        }
        Ok(if have == expected {
            self.incoming.take()
        } else {
            None
        })
    }

    /// Whether a channel exception is closing this channel (it drops what arrives meanwhile).
    pub(crate) fn closing(&self) -> bool {
        self.closing
    }

    /// Publish a message [`accept`](Channel::accept) found complete. Not an `async fn` (it
    /// would be one more level copying the publish future, see [`accept`](Channel::accept)), so
    /// the caller tags the error with `basic.publish`'s ids (`.on(60, 40)`).
    pub(crate) fn publish_incoming(
        &mut self,
        incoming: Incoming,
    ) -> impl Future<Output = Result<(), AmqpError>> + Send + '_ {
        self.publish_batch(vec![incoming])
    }
}

pub(crate) fn gone(_: Gone) -> AmqpError {
    AmqpError::internal("connection writer stopped")
}
