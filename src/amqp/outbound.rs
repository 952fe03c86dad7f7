//! The connection's outbound side: a bounded queue of frame batches and the task that writes
//! them to the socket, sending heartbeats when the connection is otherwise idle.
//!
//! Invariants:
//! - a batch is written contiguously, so a delivery's method, header and body frames are never
//!   interleaved with another channel's content (AMQP requires this per channel);
//! - the queue is bounded ([`OUTBOUND_BATCHES`]): a client that does not read makes senders
//!   wait, which in turn stops consumers taking more messages and the reader taking more
//!   publishes. Memory per connection stays bounded.

use std::time::Duration;

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::AMQPClass;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::codec::{encode, FRAME_BODY, FRAME_END};
use super::content;
use super::convert::properties_to_amqp;
use crate::message::Message;

/// Frame batches that may wait for the socket before senders block.
pub const OUTBOUND_BATCHES: usize = 128;

/// Frames for the writer, written contiguously.
#[derive(Debug)]
pub enum Batch {
    Frames(Vec<AMQPFrame>),
    /// Already encoded (content: see [`Outbound::content_frames`]).
    Encoded(Vec<u8>),
}

impl From<Vec<AMQPFrame>> for Batch {
    fn from(frames: Vec<AMQPFrame>) -> Batch {
        Batch::Frames(frames)
    }
}

/// A handle for sending frames to the peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Batch>,
    /// Negotiated frame-max; bodies are split into frames of at most `frame_max - 8` bytes.
    frame_max: u32,
}

/// The peer is gone (the writer stopped).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection closed")]
pub struct Gone;

impl Outbound {
    pub fn new(frame_max: u32) -> (Outbound, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(OUTBOUND_BATCHES);
        (Outbound { tx, frame_max }, rx)
    }

    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    pub async fn send(&self, batch: impl Into<Batch>) -> Result<(), Gone> {
        self.tx.send(batch.into()).await.map_err(|_| Gone)
    }

    pub async fn method(&self, channel: u16, method: AMQPClass) -> Result<(), Gone> {
        self.send(vec![AMQPFrame::Method(channel, method)]).await
    }

    /// The frames of a content-carrying method, encoded: method, header, body split to
    /// frame-max. Encoded here, by the sender, so the body is copied once (into the batch)
    /// rather than into body frames and again by the writer.
    pub fn content_frames(&self, channel: u16, method: AMQPClass, message: &Message) -> Batch {
        let body = &message.body[..];
        let chunk = (self.frame_max as usize).saturating_sub(8).max(1);
        let frames = body.len().div_ceil(chunk);
        let mut out = Vec::with_capacity(256 + body.len() + 8 * frames);
        let encoded = encode(&AMQPFrame::Method(channel, method), &mut out).and_then(|()| {
            if content::encode_header(channel, message, &mut out) {
                return Ok(());
            }
            let header = AMQPContentHeader {
                class_id: content::CLASS_BASIC,
                body_size: body.len() as u64,
                properties: properties_to_amqp(message),
            };
            encode(&AMQPFrame::Header(channel, header), &mut out)
        });
        if let Err(e) = encoded {
            // Only our own values are encoded here; a failure is a bug, not client input.
            tracing::error!(error = %e, "dropping a message that cannot be encoded");
            return Batch::Encoded(Vec::new());
        }
        for c in body.chunks(chunk) {
            out.push(FRAME_BODY);
            out.extend_from_slice(&channel.to_be_bytes());
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
            out.push(FRAME_END);
        }
        Batch::Encoded(out)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Write batches until every sender is dropped or the socket fails. With a non-zero
/// `heartbeat`, a heartbeat frame goes out whenever nothing was written for that long.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    mut rx: mpsc::Receiver<Batch>,
    heartbeat: Option<Duration>,
) -> std::io::Result<()> {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let batch = match heartbeat {
            None => rx.recv().await,
            Some(every) => match tokio::time::timeout(every, rx.recv()).await {
                Ok(b) => b,
                Err(_) => Some(Batch::Frames(vec![AMQPFrame::Heartbeat])),
            },
        };
        let Some(batch) = batch else { break };
        write_batch(&mut writer, &mut buf, &batch).await?;
        // Coalesce whatever is already queued into one flush.
        while let Ok(batch) = rx.try_recv() {
            write_batch(&mut writer, &mut buf, &batch).await?;
        }
        writer.flush().await?;
    }
    writer.flush().await?;
    writer.shutdown().await
}

async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    buf: &mut Vec<u8>,
    batch: &Batch,
) -> std::io::Result<()> {
    let frames = match batch {
        Batch::Encoded(bytes) => return writer.write_all(bytes).await,
        Batch::Frames(frames) => frames,
    };
    for frame in frames {
        buf.clear();
        if let Err(e) = encode(frame, buf) {
            // Only our own values are encoded here; a failure is a bug, not client input.
            tracing::error!(error = %e, "dropping a frame that cannot be encoded");
            continue;
        }
        writer.write_all(buf).await?;
    }
    Ok(())
}
