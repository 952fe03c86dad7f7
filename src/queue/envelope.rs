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

/// Bytes an encoded header takes besides its strings' own: the version and length prefix,
/// MessagePack markers, three integers at their widest, a marker per string.
const HEADER_ROOM: usize = 64;

/// Encode a header and an already-encoded message. One allocation, sized for the whole record:
/// the header is written in place and its length patched in after (encoding it apart took an
/// allocation of its own and two more as it grew, on every publish).
pub fn encode(header: &EnvelopeHeader, message: &[u8]) -> Result<Vec<u8>, QueueError> {
    let mut out = Vec::with_capacity(header_capacity(header) + message.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write(&mut out, header).map_err(crate::message::CodecError::from)?;
    let len = u32::try_from(out.len() - 5).expect("a header is far below 4 GiB");
    out[1..5].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

/// Bytes [`encode`] reserves for the version, the length prefix and `header`.
fn header_capacity(header: &EnvelopeHeader) -> usize {
    let keys: usize = header.routing_keys.iter().map(|k| k.len() + 5).sum();
    HEADER_ROOM + header.exchange.len() + keys
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

    #[test]
    fn the_layout_is_unchanged_and_the_widest_header_fits_its_room() {
        let h = EnvelopeHeader {
            enqueued_ms: u64::MAX,
            not_before_ms: Some(u64::MAX),
            expires_ms: Some(u64::MAX),
            deliveries: u32::MAX,
            exchange: "orders".into(),
            routing_keys: vec!["a.b".into(), "c".into()],
        };
        let message = Message::new(vec![1u8; 1024]).encode().unwrap();
        let header = rmp_serde::to_vec(&h).unwrap();
        let len = (header.len() as u32).to_be_bytes();
        let expected = [&[ENVELOPE_VERSION][..], &len, &header, &message].concat();
        assert_eq!(encode(&h, &message).unwrap(), expected);
        assert!(5 + header.len() <= header_capacity(&h), "allocated once");
    }
}
