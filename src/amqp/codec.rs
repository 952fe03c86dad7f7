//! Frame reading and writing over a byte stream, with `frame-max` enforced before buffering.
//!
//! The encoding itself is `amq-protocol`'s ([`parse_frame`], [`gen_frame`]); this file only
//! splits the stream into frames. It reads the 7-byte frame header first so that a frame larger
//! than the negotiated `frame-max` is refused (501 FRAME_ERROR) *before* its payload is
//! buffered: a peer cannot make us allocate more than `frame-max` bytes per connection.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::AmqpError;
use super::nesting::{nesting_bound, MAX_FRAME_NESTING};
use super::{content, hot_frames};

/// Frame header: type (1), channel (2), payload size (4).
const HEADER_LEN: usize = 7;
/// The frame-end octet every frame carries after its payload.
pub const FRAME_END: u8 = 0xCE;
/// Frame type octets.
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
/// `AMQP\0\0\9\1`.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// A frame as the connection loop reads it.
#[derive(Debug)]
pub(crate) enum Inbound {
    Frame(AMQPFrame),
    /// A content header on this channel, already in message parts.
    Header(u16, content::ParsedHeader),
}

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the stream between frames.
    #[error("connection closed by peer")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid frame: answer with this exception and close.
    #[error("{0}")]
    Protocol(AmqpError),
}

/// Room made for each read from the socket: a pipelined publisher's frames arrive many per
/// read, so one system call (and one wake-up of the connection task) serves dozens of them.
const READ_CHUNK: usize = 64 * 1024;

/// Reads frames from a stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    /// Largest frame accepted, header and frame-end included.
    frame_max: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, frame_max: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(8 * 1024),
            frame_max,
        }
    }

    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Read the 8-byte protocol header a client sends first. Returns the bytes; the caller
    /// checks them against [`PROTOCOL_HEADER`].
    pub async fn read_protocol_header(&mut self) -> Result<[u8; 8], ReadError> {
        self.fill(8).await?;
        let mut header = [0u8; 8];
        header.copy_from_slice(&self.buf[..8]);
        self.buf.advance(8);
        Ok(header)
    }

    /// Read one frame.
    pub async fn read_frame(&mut self) -> Result<AMQPFrame, ReadError> {
        let total = self.next_frame().await?;
        self.parse(total)
    }

    /// Read one frame, a publish's content header parsed straight into message parts when
    /// [`content::parse_header`] can (the connection loop's read; see that module).
    pub(crate) async fn read_inbound(&mut self) -> Result<Inbound, ReadError> {
        let total = self.next_frame().await?;
        self.inbound(total)
    }

    /// The next frame if it is already whole in the buffer: the connection loop takes a
    /// pipelined client's frames this way, without a read future (or its timeout and shutdown
    /// watch) per frame. `None` when a read is needed; errors are `read_inbound`'s.
    pub(crate) fn buffered_inbound(&mut self) -> Option<Result<Inbound, ReadError>> {
        match self.buffered_frame() {
            Ok(Some(total)) => Some(self.inbound(total)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn inbound(&mut self, total: usize) -> Result<Inbound, ReadError> {
        if self.buf[0] == FRAME_HEADER {
            if let Some(h) = content::parse_header(&self.buf[HEADER_LEN..total - 1]) {
                let channel = u16::from_be_bytes([self.buf[1], self.buf[2]]);
                self.buf.advance(total);
                return Ok(Inbound::Header(channel, h));
            }
        }
        self.parse(total).map(Inbound::Frame)
    }

    /// Buffer the next whole frame and check its envelope; returns its length.
    async fn next_frame(&mut self) -> Result<usize, ReadError> {
        self.fill(HEADER_LEN).await?;
        let total = self.frame_len()?;
        self.fill(total).await?;
        self.check_frame(total)
    }

    /// [`next_frame`](Self::next_frame) without reading: `Some` only if the whole frame is
    /// buffered.
    fn buffered_frame(&mut self) -> Result<Option<usize>, ReadError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let total = self.frame_len()?;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.check_frame(total).map(Some)
    }

    /// The length of the frame whose header is buffered, checked against frame-max.
    fn frame_len(&self) -> Result<usize, ReadError> {
        let kind = self.buf[0];
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(protocol(AmqpError::frame_error(format!(
                "unknown frame type {kind}"
            ))));
        }
        let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
        let total = u64::from(size) + HEADER_LEN as u64 + 1;
        if total > u64::from(self.frame_max) {
            return Err(protocol(AmqpError::frame_error(format!(
                "frame of {total} bytes exceeds frame-max {}",
                self.frame_max
            ))));
        }
        Ok(total as usize)
    }

    /// Check the whole buffered frame of `total` bytes: its end octet, its tables' nesting.
    fn check_frame(&self, total: usize) -> Result<usize, ReadError> {
        if self.buf[total - 1] != FRAME_END {
            return Err(protocol(AmqpError::frame_error("frame-end octet missing")));
        }
        // Body frames carry no tables; the others are parsed recursively (see `nesting`).
        if self.buf[0] != FRAME_BODY
            && nesting_bound(&self.buf[HEADER_LEN..total - 1], MAX_FRAME_NESTING)
                > MAX_FRAME_NESTING
        {
            return Err(protocol(AmqpError::frame_error(format!(
                "field tables nest more than {MAX_FRAME_NESTING} levels deep"
            ))));
        }
        Ok(total)
    }

    /// Decode the buffered frame of `total` bytes with amq-protocol.
    fn parse(&mut self, total: usize) -> Result<AMQPFrame, ReadError> {
        let channel = u16::from_be_bytes([self.buf[1], self.buf[2]]);
        let payload = &self.buf[HEADER_LEN..total - 1];
        let frame = match hot_frames::parse(self.buf[0], channel, payload) {
            Some(frame) => frame,
            None => match parse_frame(&self.buf[..total]) {
                Ok((_, frame)) => frame,
                Err(_) => return Err(protocol(undecodable(&self.buf[..total]))),
            },
        };
        self.buf.advance(total);
        Ok(frame)
    }

    /// Buffer at least `n` bytes. EOF before any byte of a new unit is [`ReadError::Closed`].
    async fn fill(&mut self, n: usize) -> Result<(), ReadError> {
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).max(READ_CHUNK));
            let read = self.inner.read_buf(&mut self.buf).await?;
            if read == 0 {
                return Err(if self.buf.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
        Ok(())
    }
}

fn protocol(e: AmqpError) -> ReadError {
    ReadError::Protocol(e)
}

/// The exception for a well-delimited frame that amq-protocol cannot decode: an unknown class
/// or method is 540 NOT_IMPLEMENTED, a known method with bad arguments 502 SYNTAX_ERROR, and a
/// bad content header or anything else 501 FRAME_ERROR.
fn undecodable(frame: &[u8]) -> AmqpError {
    let payload = &frame[HEADER_LEN..frame.len() - 1];
    if frame[0] != 1 || payload.len() < 4 {
        return AmqpError::frame_error("malformed frame");
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    let known: &[u16] = match class {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => return AmqpError::not_implemented(format!("unknown class {class}")).on(class, method),
    };
    if known.contains(&method) {
        AmqpError::syntax_error(format!(
            "cannot decode the arguments of method {class}.{method}"
        ))
        .on(class, method)
    } else {
        AmqpError::not_implemented(format!("unknown method {method} of class {class}"))
            .on(class, method)
    }
}

/// Serialise one frame. Fails only for values amq-protocol cannot encode.
pub fn encode(frame: &AMQPFrame, out: &mut Vec<u8>) -> Result<(), AmqpError> {
    let buf = std::mem::take(out);
    match gen_frame(frame)(WriteContext::from(buf)) {
        Ok(ctx) => {
            *out = ctx.write;
            Ok(())
        }
        Err(e) => Err(AmqpError::internal(format!("cannot encode frame: {e:?}"))),
    }
}
