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
use amq_protocol::protocol::{basic::AMQPProperties, AMQPClass};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::codec::encode;

/// Frame batches that may wait for the socket before senders block.
pub const OUTBOUND_BATCHES: usize = 128;

/// A handle for sending frames to the peer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Vec<AMQPFrame>>,
    /// Negotiated frame-max; bodies are split into frames of at most `frame_max - 8` bytes.
    frame_max: u32,
}

/// The peer is gone (the writer stopped).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("connection closed")]
pub struct Gone;

impl Outbound {
    pub fn new(frame_max: u32) -> (Outbound, mpsc::Receiver<Vec<AMQPFrame>>) {
        let (tx, rx) = mpsc::channel(OUTBOUND_BATCHES);
        (Outbound { tx, frame_max }, rx)
    }

    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    pub async fn send(&self, frames: Vec<AMQPFrame>) -> Result<(), Gone> {
        self.tx.send(frames).await.map_err(|_| Gone)
    }

    pub async fn method(&self, channel: u16, method: AMQPClass) -> Result<(), Gone> {
        self.send(vec![AMQPFrame::Method(channel, method)]).await
    }

    /// The frames of a content-carrying method: method, header, body split to frame-max.
    pub fn content_frames(
        &self,
        channel: u16,
        method: AMQPClass,
        properties: AMQPProperties,
        body: &[u8],
    ) -> Vec<AMQPFrame> {
        let chunk = (self.frame_max as usize).saturating_sub(8).max(1);
        let mut frames = Vec::with_capacity(2 + body.len().div_ceil(chunk));
        frames.push(AMQPFrame::Method(channel, method));
        frames.push(AMQPFrame::Header(
            channel,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties,
            },
        ));
        frames.extend(
            body.chunks(chunk)
                .map(|c| AMQPFrame::Body(channel, c.to_vec())),
        );
        frames
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Write batches until every sender is dropped or the socket fails. With a non-zero
/// `heartbeat`, a heartbeat frame goes out whenever nothing was written for that long.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    mut rx: mpsc::Receiver<Vec<AMQPFrame>>,
    heartbeat: Option<Duration>,
) -> std::io::Result<()> {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let batch = match heartbeat {
            None => rx.recv().await,
            Some(every) => match tokio::time::timeout(every, rx.recv()).await {
                Ok(b) => b,
                Err(_) => Some(vec![AMQPFrame::Heartbeat]),
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
    batch: &[AMQPFrame],
) -> std::io::Result<()> {
    for frame in batch {
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
