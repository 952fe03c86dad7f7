//! Gathering: the publishes of one read that go on together, as one batch.
//!
//! Why: a pipelining publisher's read holds dozens of whole messages, and routing them together
//! lets a batch router answer all of them in one call (`Broker::submit_batch`). Invariants:
//! gathering never waits (only frames already in the read buffer are taken), a batch holds
//! publishes to one exchange on one channel in frame order, and whatever ended the batch is
//! handled next, as if it had been read after the batch was published.

use tokio::io::AsyncRead;

use super::{Connection, Step};
use crate::amqp::channel::Incoming;
use crate::amqp::codec::{FrameReader, ReadError};

/// Whole publishes to one exchange on one channel that one read may gather into a batch
/// ([`Connection::gather`]). A 64 KiB read holds about sixty 1 KiB messages.
const MAX_BATCH: usize = 64;

impl Connection {
    /// Gathers the whole publishes to `first`'s exchange on channel `id` that follow it in the
    /// read buffer, up to [`MAX_BATCH`], so that they are routed together (one plugin call for
    /// an `x-wasm` exchange whose router takes batches). Returns the batch and what ended it,
    /// already accepted: a frame for something else, or a read error. Nothing here waits.
    pub(super) fn gather<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
        id: u16,
        first: Incoming,
    ) -> (Vec<Incoming>, Option<Result<Step, ReadError>>) {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Some(frame) = reader.buffered_inbound() else {
                break;
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => return (batch, Some(Err(e))),
            };
            match self.accept(frame) {
                Step::Done => {}
                Step::Publish(next, incoming)
                    if next == id && incoming.method.exchange == batch[0].method.exchange =>
                {
                    batch.push(incoming)
                }
                other => return (batch, Some(Ok(other))),
            }
        }
        (batch, None)
    }

    /// Whether a step gathered past a batch still stands once the batch is published: not a
    /// publish or content error on the batch's channel if the batch closed it (frames after a
    /// channel exception are dropped, as if they had arrived after it).
    pub(super) fn still_wanted(&self, id: u16, next: &Result<Step, ReadError>) -> bool {
        let on_batch_channel =
            matches!(next, Ok(Step::Publish(c, _) | Step::Failed(c, _)) if *c == id);
        !on_batch_channel || self.channels.get(&id).is_some_and(|ch| !ch.closing())
    }
}
