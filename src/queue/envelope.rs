//! The stored record of a queued message: a small header of queue state, then the message.
//!
//! Layout: `[ENVELOPE_VERSION] ++ u32 BE header length ++ rmp(header) ++ Message::encode()`.
//! Why a separate header: retry bookkeeping (delivery count, next-ready time) is rewritten on
//! nack without re-encoding the message, and dispatch can decide "expired? delayed?" from the
//! header alone.

use serde::{Deserialize, Serialize};

use super::QueueError;
use crate::message::Message;

/// Record version this build writes.
pub const ENVELOPE_VERSION: u8 = 1;

/// Queue-side state of one stored message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EnvelopeHeader {
    /// When the queue accepted it (ms since the epoch).
    pub enqueued_ms: u64,
    /// Not ready before this time: scheduled delivery or a retry delay.
    pub not_before_ms: Option<u64>,
    /// Dead-lettered (reason `expired`) at or after this time instead of delivered.
    pub expires_ms: Option<u64>,
    /// Deliveries recorded durably (updated on nack; see ARCHITECTURE.md for what a crash loses).
    pub deliveries: u32,
    /// Exchange and routing keys it was published with, for `x-death` entries.
    pub exchange: String,
    pub routing_keys: Vec<String>,
}

/// Encode a header and an already-encoded message.
pub fn encode(header: &EnvelopeHeader, message: &[u8]) -> Result<Vec<u8>, QueueError> {
    let h = rmp_serde::to_vec(header).map_err(crate::message::CodecError::from)?;
    let mut out = Vec::with_capacity(5 + h.len() + message.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(message);
    Ok(out)
}

/// Split a record into its header and the encoded message bytes.
pub fn decode_header(bytes: &[u8]) -> Result<(EnvelopeHeader, &[u8]), QueueError> {
    let bad = |what: &str| QueueError::CorruptRecord(what.to_owned());
    match bytes.first() {
        Some(&ENVELOPE_VERSION) => {}
        Some(v) => return Err(bad(&format!("unknown envelope version {v}"))),
        None => return Err(bad("empty envelope")),
    }
    let len = bytes
        .get(1..5)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| bad("truncated envelope"))? as usize;
    let h = bytes
        .get(5..5 + len)
        .ok_or_else(|| bad("truncated envelope header"))?;
    let header = rmp_serde::from_slice(h).map_err(|e| bad(&e.to_string()))?;
    Ok((header, &bytes[5 + len..]))
}

/// Decode a whole record.
pub fn decode(bytes: &[u8]) -> Result<(EnvelopeHeader, Message), QueueError> {
    let (h, m) = decode_header(bytes)?;
    Ok((h, Message::decode(m)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let msg = Message::new(&b"body"[..]);
        let h = EnvelopeHeader {
            enqueued_ms: 5,
            deliveries: 2,
            ..Default::default()
        };
        let rec = encode(&h, &msg.encode().unwrap()).unwrap();
        let (h2, m2) = decode(&rec).unwrap();
        assert_eq!((h2, m2), (h, msg));
        assert!(decode(&rec[..3]).is_err());
        assert!(decode(&[9]).is_err());
    }
}
