//! The stored form of a message: one version byte, then MessagePack (rmp-serde).
//!
//! The version byte lets the record format evolve: a reader dispatches on it and refuses versions
//! it does not know with a clear error instead of misreading bytes.

use super::Message;

/// The record version this build writes.
pub const RECORD_VERSION: u8 = 1;

/// Why a stored message could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty message record")]
    Empty,
    #[error("message record version {0} is not known to this build (it reads version {RECORD_VERSION}); was the data directory written by a newer Switchyard?")]
    UnknownVersion(u8),
    #[error("corrupt message record: {0}")]
    Corrupt(#[from] rmp_serde::decode::Error),
    #[error("message could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

impl Message {
    /// Encode as `[RECORD_VERSION] ++ msgpack(self)`.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.push(RECORD_VERSION);
        rmp_serde::encode::write(&mut out, self)?;
        Ok(out)
    }

    /// Decode a record written by [`Message::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
        match bytes.split_first() {
            None => Err(CodecError::Empty),
            Some((&RECORD_VERSION, rest)) => Ok(rmp_serde::from_slice(rest)?),
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
