//! One client connection: handshake, the frame loop, and connection-level exceptions.
//!
//! The connection task owns the read half and every channel's state; a writer task owns the
//! write half (see [`super::outbound`]). Frames are handled strictly in arrival order, which
//! is what makes per-channel ordering (publishes, acks) hold.
//!
//! Lifecycle: protocol header → start/start-ok (PLAIN) → tune/tune-ok → open/open-ok → frames
//! → close. Any hard error sends `connection.close` with its code, waits briefly for
//! `close-ok` and drops the socket; dropping the channels drops their consumers, which returns
//! unacknowledged messages to their queues.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, connection, AMQPClass};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::channel::{Accept, Channel, Incoming, Next};
use super::codec::{FrameReader, Inbound, ReadError, PROTOCOL_HEADER};
use super::convert::short;
use super::error::AmqpError;
pub use super::handshake::Tuned;
use super::handshake::{handshake, timed, write_direct};
use super::outbound::{write_loop, Outbound};
use super::server::Shared;

mod gather;

/// How long we wait for `close-ok` after sending `connection.close`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serve one accepted socket until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    ended(serve_io(read, write, peer, shared).await, peer);
}

/// [`serve`] over another transport (a TLS stream after its handshake). `tokio::io::split`
/// costs a lock per read and write, which plain TCP avoids with `into_split`.
pub async fn serve_stream<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    ended(serve_io(read, write, peer, shared).await, peer);
}

fn ended(result: Result<(), ReadError>, peer: SocketAddr) {
    match result {
        Ok(()) | Err(ReadError::Closed) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "amqp connection ended"),
    }
}

/// Answer a connection that may not be served (the connection limit): run the handshake so
/// the client can read why, then send `connection.close` with `why` instead of `open-ok`.
pub async fn serve_refused<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, why: AmqpError)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    if let Err(e) = serve_until_open(read, write, peer, shared, Some(why)).await {
        tracing::debug!(%peer, error = %e, "refused amqp connection ended");
    }
}

pub(crate) async fn serve_io<R, W>(
    read: R,
    write: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Result<(), ReadError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_until_open(read, write, peer, shared, None).await
}

/// The handshake, then (unless `refusal` is given) the connection's frames until it closes.
async fn serve_until_open<R, W>(
    read: R,
    mut write: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
    refusal: Option<AmqpError>,
) -> Result<(), ReadError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut reader = FrameReader::new(read, shared.config.frame_max);
    let header = timed(reader.read_protocol_header()).await?;
    if header != PROTOCOL_HEADER {
        // The spec: answer with the protocol header we support, then close.
        write.write_all(&PROTOCOL_HEADER).await?;
        write.shutdown().await?;
        return Ok(());
    }
    let tuned = match handshake(&mut reader, &mut write, peer, &shared, refusal).await {
        Ok(t) => t,
        Err(ReadError::Protocol(err)) => {
            let close = close_method(&err);
            write_direct(&mut write, &AMQPFrame::Method(0, close)).await?;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, reader.read_frame()).await;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    reader.set_frame_max(tuned.frame_max);
    let heartbeat = (tuned.heartbeat > 0).then(|| Duration::from_secs(tuned.heartbeat.into()));
    let (out, rx) = Outbound::new(tuned.frame_max);
    let writer = tokio::spawn(write_loop(write, rx, heartbeat));
    let id = shared.next_connection();
    let alarm = shared.broker.alarm().subscribe();
    let notifier = tuned
        .blocked_capable
        .then(|| tokio::spawn(notify_blocked(alarm.clone(), out.clone())));
    let _registered = shared
        .registry
        .add_connection(super::registry::ConnectionInfo {
            id,
            peer,
            user: tuned.user.clone(),
            connected_at_ms: super::registry::now_ms(),
        });
    let mut conn = Connection {
        id,
        shared: shared.clone(),
        out,
        tuned,
        channels: HashMap::new(),
        alarm,
    };
    let result = conn.run(&mut reader, heartbeat).await;
    // Channels first: their consumers requeue unacked messages; then let the writer drain
    // (it ends once every `Outbound` clone, the notifier's too, is gone).
    conn.close_channels().await;
    drop(conn);
    if let Some(n) = notifier {
        n.abort();
        let _ = n.await;
    }
    shared.release_connection(id);
    // A panic in the writer is a bug: surface it as this task's (the fuzz harness sees it).
    if let Err(e) = writer.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    result
}

/// What [`Connection::accept`] made of a frame, or how reading ended.
enum Step {
    Done,
    Publish(u16, Incoming),
    Failed(u16, AmqpError),
    Other(Inbound),
    /// Two heartbeats missed.
    Stop,
    /// The broker is shutting down.
    Shutdown,
}

struct Connection {
    id: u64,
    shared: Arc<Shared>,
    out: Outbound,
    tuned: Tuned,
    channels: HashMap<u16, Channel>,
    /// The broker's resource alarm: while raised, publishes are not read.
    alarm: watch::Receiver<Option<String>>,
}

impl Connection {
    async fn close_channels(&mut self) {
        for (_, mut ch) in self.channels.drain() {
            ch.reset().await;
        }
    }

    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
        heartbeat: Option<Duration>,
    ) -> Result<(), ReadError> {
        // The spec allows closing after two missed heartbeats.
        let idle = heartbeat.map(|h| h * 2 + Duration::from_millis(500));
        let mut shutdown = self.shared.on_shutdown();
        // What the last batch's gathering read past its end (see `gather`).
        let mut pending: Option<Result<Step, ReadError>> = None;
        loop {
            let frame = match pending.take() {
                Some(Ok(step)) => Ok(step),
                Some(Err(e)) => Err(e),
                None => match self.next_frame(reader, &mut shutdown, idle).await {
                    Ok(Ok(frame)) => Ok(self.accept(frame)),
                    Ok(Err(ended)) => Ok(ended),
                    Err(e) => Err(e),
                },
            };
            let step = match frame {
                Ok(step) => step,
                Err(ReadError::Protocol(err)) => return self.fail(reader, err).await,
                Err(e) => return Err(e),
            };
            // Most frames of a publish make no future at all, a whole message one small one;
            // the rest are rare and boxed, so that this loop's future stays as small as a
            // publish needs (see `Channel::accept`).
            let flow = match step {
                Step::Done => continue,
                Step::Publish(id, incoming) => {
                    let (batch, next) = self.gather(reader, id, incoming);
                    let flow = self.publish(id, batch).await;
                    pending = next.filter(|next| self.still_wanted(id, next));
                    flow
                }
                Step::Failed(id, e) => Box::pin(self.channel_failed(id, e)).await,
                Step::Other(inbound) => Box::pin(self.handle_other(inbound)).await,
                Step::Stop => return Ok(()),
                Step::Shutdown => {
                    let bye = AmqpError::connection_forced("broker shutdown");
                    return self.fail(reader, bye).await;
                }
            };
            match flow {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Ok(()),
                Err(err) => return self.fail(reader, err).await,
            }
        }
    }

    /// The next frame: from the buffer when a pipelining client's next frames are there already
    /// (no read future, timeout or shutdown watch for them), else read, bounded by the
    /// heartbeat and shutdown. `Ok(Err(step))` is how reading ended instead.
    async fn next_frame<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
        shutdown: &mut watch::Receiver<bool>,
        idle: Option<Duration>,
    ) -> Result<Result<Inbound, Step>, ReadError> {
        if let Some(frame) = reader.buffered_inbound() {
            return frame.map(Ok);
        }
        let next = async {
            match idle {
                None => Some(reader.read_inbound().await),
                Some(limit) => tokio::time::timeout(limit, reader.read_inbound())
                    .await
                    .ok(),
            }
        };
        let next = tokio::select! {
            _ = shutdown.wait_for(|down| *down) => return Ok(Err(Step::Shutdown)),
            next = next => next,
        };
        match next {
            None => {
                tracing::debug!("amqp heartbeat timeout");
                Ok(Err(Step::Stop))
            }
            Some(frame) => frame.map(Ok),
        }
    }

    /// The publish path up to a whole message, without an `await` (`basic.publish` and its
    /// content frames, on an open channel, with no resource alarm).
    fn accept(&mut self, inbound: Inbound) -> Step {
        let id = match &inbound {
            Inbound::Header(id, _)
            | Inbound::Frame(AMQPFrame::Header(id, _) | AMQPFrame::Body(id, _)) => *id,
            Inbound::Frame(frame @ AMQPFrame::Method(id, _))
                if is_publish(frame) && self.alarm.borrow().is_none() =>
            {
                *id
            }
            _ => 0,
        };
        let Some(ch) = self.channels.get_mut(&id).filter(|_| id != 0) else {
            return Step::Other(inbound);
        };
        match ch.accept(inbound) {
            Accept::Buffered => Step::Done,
            Accept::Complete(incoming) => Step::Publish(id, incoming),
            Accept::Failed(e) => Step::Failed(id, e),
            Accept::Other(inbound) => Step::Other(inbound),
        }
    }

    async fn publish(&mut self, id: u16, batch: Vec<Incoming>) -> Result<Flow, AmqpError> {
        let ch = self
            .channels
            .get_mut(&id)
            .expect("accepted by an open channel");
        match ch.publish_batch(batch).await {
            Ok(()) => Ok(Flow::Continue),
            Err(e) => Box::pin(self.channel_failed(id, e.on(60, 40))).await,
        }
    }

    /// A channel exception on the publish path: close the channel.
    async fn channel_failed(&mut self, id: u16, e: AmqpError) -> Result<Flow, AmqpError> {
        let ch = self
            .channels
            .get_mut(&id)
            .expect("accepted by an open channel");
        if ch.on_result(Err(e)).await? == Next::Closed {
            self.channels.remove(&id);
        }
        Ok(Flow::Continue)
    }

    /// Every frame [`accept`](Connection::accept) does not take: connection methods, channel
    /// open, the other methods, and content on a closing or unopened channel.
    async fn handle_other(&mut self, inbound: Inbound) -> Result<Flow, AmqpError> {
        let frame = match inbound {
            Inbound::Frame(frame) => frame,
            Inbound::Header(0, _) => {
                return Err(AmqpError::command_invalid("content frame on channel 0"))
            }
            Inbound::Header(id, _) => return self.on_channel(id, inbound).await,
        };
        let id = frame.channel_id();
        match frame {
            AMQPFrame::Heartbeat => Ok(Flow::Continue),
            AMQPFrame::InvalidHeartbeat(_) => Err(AmqpError::frame_error(
                "heartbeat frame on a non-zero channel",
            )),
            AMQPFrame::ProtocolHeader(_) => Err(AmqpError::command_invalid(
                "protocol header after the handshake",
            )),
            AMQPFrame::Method(0, AMQPClass::Connection(m)) => self.connection_method(m).await,
            AMQPFrame::Method(0, other) => Err(AmqpError::command_invalid(format!(
                "class {} method on channel 0",
                other.get_amqp_class_id()
            ))),
            AMQPFrame::Header(0, _) | AMQPFrame::Body(0, _) => {
                Err(AmqpError::command_invalid("content frame on channel 0"))
            }
            AMQPFrame::Method(_, AMQPClass::Connection(_)) => Err(AmqpError::command_invalid(
                "connection method on a non-zero channel",
            )),
            AMQPFrame::Method(
                _,
                AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Open(_)),
            ) => {
                if id > self.tuned.channel_max {
                    return Err(AmqpError::channel_error(format!(
                        "channel {id} is above channel-max {}",
                        self.tuned.channel_max
                    )));
                }
                if self.channels.contains_key(&id) {
                    return Err(AmqpError::channel_error(format!(
                        "channel {id} is already open"
                    )));
                }
                let ch = Channel::new(
                    id,
                    self.id,
                    self.shared.clone(),
                    self.out.clone(),
                    &self.tuned,
                );
                ch.open_ok().await?;
                self.channels.insert(id, ch);
                Ok(Flow::Continue)
            }
            frame => {
                if is_publish(&frame) && self.alarm.borrow().is_some() {
                    // RabbitMQ's blocking: stop reading this connection at its next publish
                    // until the alarm clears; the client's unread frames wait in the socket.
                    tracing::debug!(connection = self.id, "blocked by a resource alarm");
                    let _ = self.alarm.wait_for(Option::is_none).await;
                }
                self.on_channel(id, Inbound::Frame(frame)).await
            }
        }
    }

    /// Hand a frame to open channel `id`.
    async fn on_channel(&mut self, id: u16, frame: Inbound) -> Result<Flow, AmqpError> {
        let Some(ch) = self.channels.get_mut(&id) else {
            return Err(AmqpError::channel_error(format!(
                "channel {id} is not open"
            )));
        };
        match ch.handle(frame).await? {
            Next::Keep => {}
            Next::Closed => {
                self.channels.remove(&id);
            }
        }
        Ok(Flow::Continue)
    }

    async fn connection_method(&mut self, m: connection::AMQPMethod) -> Result<Flow, AmqpError> {
        match m {
            connection::AMQPMethod::Close(_) => {
                self.close_channels().await;
                let ok =
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
                let _ = self.out.method(0, ok).await;
                Ok(Flow::Stop)
            }
            connection::AMQPMethod::CloseOk(_) => Ok(Flow::Stop),
            connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_) => {
                Ok(Flow::Continue)
            }
            connection::AMQPMethod::UpdateSecret(_) => Err(AmqpError::not_implemented(
                "connection.update-secret is not supported",
            )
            .on(10, 70)),
            _ => Err(AmqpError::command_invalid("unexpected connection method")),
        }
    }

    /// Send `connection.close` for `err`, wait briefly for `close-ok`, then stop.
    async fn fail<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
        err: AmqpError,
    ) -> Result<(), ReadError> {
        tracing::debug!(error = %err, "amqp connection exception");
        self.close_channels().await;
        if self.out.method(0, close_method(&err)).await.is_err() {
            return Ok(());
        }
        let wait = async {
            loop {
                match reader.read_frame().await {
                    Ok(AMQPFrame::Method(
                        0,
                        AMQPClass::Connection(
                            connection::AMQPMethod::CloseOk(_) | connection::AMQPMethod::Close(_),
                        ),
                    )) => break,
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, wait).await;
        Ok(())
    }
}

fn is_publish(frame: &AMQPFrame) -> bool {
    matches!(
        frame,
        AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Publish(_)))
    )
}

/// Tell a client that announced the capability when the resource alarm blocks and unblocks
/// it (`connection.blocked` with the alarm's reason, then `connection.unblocked`).
async fn notify_blocked(mut alarm: watch::Receiver<Option<String>>, out: Outbound) {
    let mut blocked = false;
    loop {
        let reason = alarm.borrow_and_update().clone();
        let method = match (reason, blocked) {
            (Some(reason), false) => connection::AMQPMethod::Blocked(connection::Blocked {
                reason: short(reason),
            }),
            (None, true) => connection::AMQPMethod::Unblocked(connection::Unblocked {}),
            _ => {
                if alarm.changed().await.is_err() {
                    return;
                }
                continue;
            }
        };
        if out.method(0, AMQPClass::Connection(method)).await.is_err() {
            return;
        }
        blocked = !blocked;
    }
}

enum Flow {
    Continue,
    Stop,
}

fn close_method(err: &AmqpError) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: err.code,
        reply_text: short(err.reply_text()),
        class_id: err.class_id,
        method_id: err.method_id,
    }))
}
