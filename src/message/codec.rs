//! The stored form of a message: one version byte, then MessagePack (rmp-serde).
//!
//! The version byte lets the record format evolve: a reader dispatches on it and refuses versions
//! it does not know with a clear error instead of misreading bytes.
//!
//! Versions: 1, the message without lineage; 2, the message with its [`Lineage`] as a trailing
//! field, left out when empty. A version 1 record reads as a version 2 record without lineage
//! (a plugin's entries in it are still in its lineage header, which shows as it was). The
//! version 2 byte keeps a build that knows only version 1 from misreading a record with lineage
//! as a corrupt one.
//!
//! [`Lineage`]: super::Lineage

use super::{Message, MAX_NESTING};

/// The record version this build writes.
pub const RECORD_VERSION: u8 = 2;

/// The oldest record version this build reads.
const OLDEST_VERSION: u8 = 1;

/// MessagePack nesting a record may have: the message's array and its headers map, then two
/// levels per header nesting level (a variant's map and the table or array), plus a few for a
/// leaf variant. Everything [`Message::encode`] writes is within it, and decoding no deeper
/// bounds the recursion (rmp-serde's default, 1024, overflows a 2 MiB stack in a debug build).
pub const RECORD_MAX_DEPTH: usize = 2 * MAX_NESTING + 8;

/// Why a stored message could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty message record")]
    Empty,
    #[error("message record version {0} is not known to this build (it reads versions {OLDEST_VERSION} to {RECORD_VERSION}); was the data directory written by a newer Switchyard?")]
    UnknownVersion(u8),
    #[error("corrupt message record: {0}")]
    Corrupt(#[from] rmp_serde::decode::Error),
    #[error("message could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("header values nest {depth} levels deep; at most {MAX_NESTING} are accepted")]
    TooDeep { depth: usize },
}

impl Message {
    /// Encode as `[RECORD_VERSION] ++ msgpack(self)`. Refuses headers nested deeper than
    /// [`MAX_NESTING`]: such a record could not be decoded again.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let depth = self.header_nesting();
        if depth > MAX_NESTING {
            return Err(CodecError::TooDeep { depth });
        }
        let mut out = Vec::with_capacity(self.record_capacity());
        out.push(RECORD_VERSION);
        rmp_serde::encode::write(&mut out, self)?;
        Ok(out)
    }

    /// What [`Message::encode`] allocates: enough for the record of a message whose header
    /// values are not nested, so the buffer is allocated once. Growing it would copy the body
    /// (a realloc of a 1 KiB record costs about as much as encoding it).
    fn record_capacity(&self) -> usize {
        /// The version byte, MessagePack markers, the properties' flags and numbers.
        const FIXED: usize = 64;
        /// A header's markers and its value's type tag.
        const PER_HEADER: usize = 12;
        FIXED + self.approximate_size() + PER_HEADER * (self.headers.len() + self.lineage.len())
    }

    /// Decode a record written by [`Message::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
        match bytes.split_first() {
            None => Err(CodecError::Empty),
            Some((&(OLDEST_VERSION..=RECORD_VERSION), rest)) => {
                let mut de = rmp_serde::Deserializer::from_read_ref(rest);
                de.set_max_depth(RECORD_MAX_DEPTH);
                let msg: Message = serde::Deserialize::deserialize(&mut de)?;
                // The MessagePack bound is a little looser than MAX_NESTING (leaf variants
                // differ); what decodes must be what encode accepts.
                match msg.header_nesting() {
                    depth if depth > MAX_NESTING => Err(CodecError::TooDeep { depth }),
                    _ => Ok(msg),
                }
            }
            Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{FieldValue, Headers};

    #[test]
    fn round_trip_keeps_header_types() {
        let mut nested = Headers::new();
        nested.insert("n".into(), FieldValue::U16(7));
        let mut msg = Message::new(&b"hello"[..])
            .with_header("s", "text")
            .with_header("i", FieldValue::I8(-3))
            .with_header("f", FieldValue::F64(1.5))
            .with_header("t", FieldValue::Timestamp(1_700_000_000))
            .with_header("b", FieldValue::Bytes(vec![0u8, 255].into()))
            .with_header("table", FieldValue::Table(nested))
            .with_header(
                "arr",
                FieldValue::Array(vec![FieldValue::Bool(true), FieldValue::Void]),
            );
        msg.properties.correlation_id = Some("c-1".into());
        msg.properties.expiration_ms = Some(5000);
        let decoded = Message::decode(&msg.encode().unwrap()).unwrap();
        assert_eq!(decoded, msg);
    }

    fn nested(levels: usize) -> FieldValue {
        (0..levels).fold(FieldValue::Void, |v, _| FieldValue::Array(vec![v]))
    }

    #[test]
    fn the_deepest_headers_allowed_round_trip_and_deeper_are_refused() {
        let tables = (0..MAX_NESTING).fold(FieldValue::Decimal { scale: 1, value: 2 }, |v, _| {
            FieldValue::Table([("k".to_string(), v)].into_iter().collect())
        });
        for deepest in [nested(MAX_NESTING), tables] {
            assert_eq!(deepest.nesting(), MAX_NESTING);
            let msg = Message::new(&b"x"[..]).with_header("h", deepest);
            assert_eq!(Message::decode(&msg.encode().unwrap()).unwrap(), msg);
        }
        let msg = Message::new(&b"x"[..]).with_header("h", nested(MAX_NESTING + 1));
        assert!(matches!(
            msg.encode(),
            Err(CodecError::TooDeep { depth }) if depth == MAX_NESTING + 1
        ));
    }

    #[test]
    fn lineage_round_trips_and_a_version_1_record_reads_without_it() {
        let mut msg = Message::new(&b"x"[..]).with_header("h", 1i64);
        let plain = msg.encode().unwrap();
        msg.lineage.push(&"router@3".into());
        let stamped = msg.encode().unwrap();
        assert_eq!(Message::decode(&stamped).unwrap(), msg);
        assert!(stamped.len() > plain.len(), "the entry is stored");
        // Version 1 wrote exactly what version 2 writes for a message without lineage.
        let v1 = [&[1u8][..], &plain[1..]].concat();
        let read = Message::decode(&v1).unwrap();
        assert!(read.lineage.is_empty());
        assert_eq!(read.headers, msg.headers);
    }

    #[test]
    fn a_record_fits_the_buffer_allocated_for_it() {
        let mut full = Message::new(vec![7u8; 1024]).with_id("0123456789abcdef0123456789");
        let p = &mut full.properties;
        p.content_type = Some("application/json".into());
        p.correlation_id = Some("c".repeat(36));
        p.reply_to = Some("replies".into());
        p.expiration_ms = Some(u64::MAX);
        p.timestamp = Some(u64::MAX);
        p.priority = Some(9);
        p.persistent = true;
        let mut shapes = vec![Message::new(&b""[..]), full.clone()];
        full.lineage
            .push(&format!("router@{}", "f".repeat(64)).into());
        shapes.push(full.clone().with_header("region", "eu"));
        for i in 0..20i64 {
            full = full.with_header(format!("h{i}"), i64::MIN + i);
        }
        shapes.push(full.with_header("f", FieldValue::F64(1.5)));
        for m in shapes {
            let record = m.encode().unwrap();
            assert!(
                record.len() <= m.record_capacity(),
                "{} bytes, {} allocated",
                record.len(),
                m.record_capacity()
            );
        }
    }

    #[test]
    fn unknown_version_and_garbage_are_clear_errors() {
        assert!(matches!(Message::decode(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            Message::decode(&[9, 1, 2]),
            Err(CodecError::UnknownVersion(9))
        ));
        assert!(matches!(
            Message::decode(&[RECORD_VERSION, 0xc1]),
            Err(CodecError::Corrupt(_))
        ));
    }
}
