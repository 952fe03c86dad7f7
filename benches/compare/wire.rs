//! A lean AMQP 0-9-1 connection for the measured data path, used for Switchyard and RabbitMQ
//! alike (`--client wire`, the default).
//!
//! Why not lapin there: lapin runs each connection's I/O on its own thread and hands every
//! delivery and every confirm to the caller's task, about two futex calls per message. On this
//! machine that was 12.9 µs of client CPU per W1 message, the larger share of what bounded the
//! relaxed run: the harness measured its client as much as the broker. Here a connection is
//! owned by one task: it encodes a batch of frames into one buffer and writes it with one call,
//! and it parses every frame one read brought. Frames are encoded and decoded by amq-protocol,
//! the codec lapin and Switchyard's server use. lapin still declares RabbitMQ's topology, and
//! `--client lapin` measures through it as before.
//!
//! Only what the workloads need: PLAIN guest login, no heartbeats, and errors for anything a
//! well-behaved run never sees (a channel or connection closed by the broker, a nack).

use std::collections::BTreeSet;
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, confirm, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{FieldTable, LongString};
use anyhow::{bail, Context as _};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// frame-max this client asks for (the broker's, if smaller, wins).
const FRAME_MAX: u32 = 128 * 1024;
/// Frame header (type, channel, size) plus the frame-end octet.
const FRAME_OVERHEAD: usize = 8;

/// One AMQP connection and the task that owns it.
#[derive(Debug)]
pub struct Wire {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    frame_max: usize,
}

/// `host:port` of an `amqp://user:pass@host:port/vhost` URI (the harness logs in as guest
/// to vhost `/` everywhere).
fn address(uri: &str) -> anyhow::Result<&str> {
    let rest = uri.strip_prefix("amqp://").context("not an amqp:// URI")?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    Ok(rest.split('/').next().unwrap_or(rest))
}

fn method(channel: u16, class: AMQPClass) -> AMQPFrame {
    AMQPFrame::Method(channel, class)
}

impl Wire {
    /// Connects, logs in as guest and opens vhost `/`.
    pub async fn open(uri: &str) -> anyhow::Result<Wire> {
        let addr = address(uri)?;
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .with_context(|| format!("no answer from {addr} within 5 s"))??;
        stream.set_nodelay(true)?;
        let mut wire = Wire {
            stream,
            rbuf: BytesMut::with_capacity(256 * 1024),
            wbuf: Vec::with_capacity(256 * 1024),
            frame_max: FRAME_MAX as usize,
        };
        wire.stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
        match wire.method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
            other => bail!("expected connection.start, got {other:?}"),
        }
        wire.push(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        ))?;
        wire.flush().await?;
        let tune = match wire.method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            other => bail!("expected connection.tune, got {other:?}"),
        };
        let frame_max = match tune.frame_max {
            0 => FRAME_MAX,
            max => max.min(FRAME_MAX),
        };
        wire.frame_max = frame_max as usize;
        wire.push(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max,
                heartbeat: 0,
            })),
        ))?;
        wire.push(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ))?;
        wire.flush().await?;
        match wire.method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => Ok(wire),
            other => bail!("expected connection.open-ok, got {other:?}"),
        }
    }

    /// Opens channel `id`.
    pub async fn open_channel(&mut self, id: u16) -> anyhow::Result<()> {
        self.push(&method(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ))?;
        self.flush().await?;
        match self.method().await? {
            (c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if c == id => Ok(()),
            other => bail!("expected channel.open-ok, got {other:?}"),
        }
    }

    /// Puts channel `id` in confirm mode.
    pub async fn confirm_select(&mut self, id: u16) -> anyhow::Result<()> {
        self.push(&method(
            id,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        ))?;
        self.flush().await?;
        match self.method().await? {
            (c, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) if c == id => Ok(()),
            other => bail!("expected confirm.select-ok, got {other:?}"),
        }
    }

    /// Sets channel `id`'s prefetch and starts consuming `queue` with manual acks.
    pub async fn consume(
        &mut self,
        id: u16,
        queue: &str,
        tag: &str,
        prefetch: u16,
    ) -> anyhow::Result<()> {
        self.push(&method(
            id,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: prefetch,
                global: false,
            })),
        ))?;
        self.flush().await?;
        match self.method().await? {
            (c, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))) if c == id => {}
            other => bail!("expected basic.qos-ok, got {other:?}"),
        }
        self.push(&method(
            id,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        ))?;
        self.flush().await?;
        match self.method().await? {
            (c, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))) if c == id => Ok(()),
            other => bail!("expected basic.consume-ok for {queue}, got {other:?}"),
        }
    }

    /// Buffers a publish (method, header and body frames); [`Wire::flush`] sends it.
    pub fn publish(
        &mut self,
        id: u16,
        exchange: &str,
        key: &str,
        props: &BasicProperties,
        body: &[u8],
    ) -> anyhow::Result<()> {
        self.push(&method(
            id,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: exchange.into(),
                routing_key: key.into(),
                mandatory: false,
                immediate: false,
            })),
        ))?;
        self.push(&AMQPFrame::Header(
            id,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: props.clone(),
            },
        ))?;
        for chunk in body.chunks(self.frame_max - FRAME_OVERHEAD) {
            self.push(&AMQPFrame::Body(id, chunk.to_vec()))?;
        }
        Ok(())
    }

    /// Buffers a cumulative acknowledgement of deliveries up to `tag` on channel `id`.
    pub fn ack(&mut self, id: u16, tag: u64) -> anyhow::Result<()> {
        self.push(&method(
            id,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple: true,
            })),
        ))
    }

    /// Writes every buffered frame in one go.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The next complete frame already read, if any. A connection or channel closed by the
    /// broker is an error naming its reason.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<AMQPFrame>> {
        if self.rbuf.len() < FRAME_OVERHEAD - 1 {
            return Ok(None);
        }
        let size = u32::from_be_bytes([self.rbuf[3], self.rbuf[4], self.rbuf[5], self.rbuf[6]]);
        let total = size as usize + FRAME_OVERHEAD;
        if self.rbuf.len() < total {
            self.rbuf.reserve(total - self.rbuf.len());
            return Ok(None);
        }
        let frame = match parse_frame(&self.rbuf[..total]) {
            Ok((_, frame)) => frame,
            Err(e) => bail!("undecodable frame from the broker: {e:?}"),
        };
        self.rbuf.advance(total);
        match &frame {
            AMQPFrame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
                bail!(
                    "the broker closed the connection: {} {}",
                    c.reply_code,
                    c.reply_text
                )
            }
            AMQPFrame::Method(ch, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
                bail!(
                    "the broker closed channel {ch}: {} {}",
                    c.reply_code,
                    c.reply_text
                )
            }
            _ => Ok(Some(frame)),
        }
    }

    /// Reads whatever the broker sent next (at least one byte). Cancel safe, so it can race a
    /// timer.
    pub async fn read(&mut self) -> anyhow::Result<()> {
        if self.stream.read_buf(&mut self.rbuf).await? == 0 {
            bail!("the broker closed the connection");
        }
        Ok(())
    }

    /// The next method frame, skipping heartbeats.
    async fn method(&mut self) -> anyhow::Result<(u16, AMQPClass)> {
        loop {
            match self.next_frame()? {
                Some(AMQPFrame::Method(ch, class)) => return Ok((ch, class)),
                Some(AMQPFrame::Heartbeat) => {}
                Some(other) => bail!("expected a method frame, got {other:?}"),
                None => self.read().await?,
            }
        }
    }

    /// Closes the connection politely; gives up after a second (the run is over anyway).
    pub async fn close(mut self) {
        let bye = method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        let closed = async {
            self.push(&bye)?;
            self.flush().await?;
            loop {
                match self.next_frame()? {
                    Some(AMQPFrame::Method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
                    )) => return anyhow::Ok(()),
                    Some(_) => {}
                    None => self.read().await?,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), closed).await;
    }

    fn push(&mut self, frame: &AMQPFrame) -> anyhow::Result<()> {
        let buf = std::mem::take(&mut self.wbuf);
        match gen_frame(frame)(WriteContext::from(buf)) {
            Ok(ctx) => {
                self.wbuf = ctx.write;
                Ok(())
            }
            Err(e) => bail!("cannot encode {frame:?}: {e:?}"),
        }
    }
}

/// Which publishes of a confirm-mode channel the broker has confirmed, whatever order its
/// (single or cumulative) acks come in. Delivery tags count from 1.
#[derive(Debug, Default)]
pub struct Confirms {
    /// Every tag up to this one is confirmed.
    through: u64,
    /// Confirmed tags above `through + 1`.
    above: BTreeSet<u64>,
}

impl Confirms {
    /// Every tag up to this one is confirmed.
    pub fn through(&self) -> u64 {
        self.through
    }

    /// Publishes up to `published` not confirmed yet.
    pub fn outstanding(&self, published: u64) -> u64 {
        published - self.through - self.above.len() as u64
    }

    /// Applies a frame: an ack advances, a nack or a return is an error (the workloads'
    /// publishes are all routable and every broker here confirms them).
    pub fn apply(&mut self, frame: &AMQPFrame) -> anyhow::Result<()> {
        match frame {
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                if a.multiple {
                    if a.delivery_tag > self.through {
                        self.through = a.delivery_tag;
                        self.above = self.above.split_off(&(a.delivery_tag + 1));
                    }
                } else if a.delivery_tag > self.through {
                    self.above.insert(a.delivery_tag);
                }
                while self.above.remove(&(self.through + 1)) {
                    self.through += 1;
                }
                Ok(())
            }
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => {
                bail!("publish {} not confirmed: nack", n.delivery_tag)
            }
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Return(r))) => {
                bail!("publish returned: {} {}", r.reply_code, r.reply_text)
            }
            _ => Ok(()),
        }
    }
}

/// Reassembles deliveries from method, header and body frames.
#[derive(Debug, Default)]
pub struct Deliveries {
    tag: u64,
    left: u64,
    body: Vec<u8>,
}

/// A delivery whose body has fully arrived.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub tag: u64,
    pub body: &'a [u8],
}

impl Deliveries {
    /// Feeds one frame; returns the delivery it completes, if any. `frame` lends the body
    /// when it arrived in one frame (the usual case: no copy).
    pub fn feed<'a>(&'a mut self, frame: &'a AMQPFrame) -> Option<Delivery<'a>> {
        match frame {
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                self.tag = d.delivery_tag;
                self.body.clear();
                None
            }
            AMQPFrame::Header(_, h) => {
                self.left = h.body_size;
                (h.body_size == 0).then_some(Delivery {
                    tag: self.tag,
                    body: &[],
                })
            }
            AMQPFrame::Body(_, data) => {
                self.left = self.left.saturating_sub(data.len() as u64);
                let whole = self.body.is_empty() && self.left == 0;
                if !whole {
                    self.body.extend_from_slice(data);
                }
                (self.left == 0).then_some(Delivery {
                    tag: self.tag,
                    body: if whole { data } else { &self.body },
                })
            }
            _ => None,
        }
    }
}
