//! The on-disk frame: one atomic group of writes.
//!
//! ```text
//! frame   := payload_len u32 LE | crc32(payload) u32 LE | payload
//! payload := VERSION u8 | op*
//! op      := PUT u8 | key_len u16 LE | key | value_len u32 LE | value
//!          | DEL u8 | key_len u16 LE | key
//! ```
//!
//! Why one CRC over the whole payload: a frame is the unit of atomicity. A publish fanned out
//! to many queues, or a dead-letter move (remove here, insert there), is one frame, and a frame
//! whose checksum fails is discarded whole — never half applied.

/// Bytes before the payload.
pub const HEADER: usize = 8;
const VERSION: u8 = 1;
const PUT: u8 = 1;
const DEL: u8 = 2;

/// A write of one frame: a key and `Some(value)` to insert, `None` to remove.
pub type WriteOp = (Vec<u8>, Option<Vec<u8>>);

/// One decoded op; offsets are relative to the start of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    Put {
        key: &'a [u8],
        value_off: usize,
        value_len: usize,
    },
    Del {
        key: &'a [u8],
    },
}

/// Appends the frame for `ops` to `out`. Returns, per op, the offset of its value relative to
/// the frame's start (`None` for removals).
pub fn encode(ops: &[WriteOp], out: &mut Vec<u8>) -> Vec<Option<usize>> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(VERSION);
    let mut offsets = Vec::with_capacity(ops.len());
    for (key, value) in ops {
        let key_len = u16::try_from(key.len()).expect("keys are short (store invariant)");
        out.push(if value.is_some() { PUT } else { DEL });
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        match value {
            Some(v) => {
                let len = u32::try_from(v.len()).expect("values are below 4 GiB");
                out.extend_from_slice(&len.to_le_bytes());
                offsets.push(Some(out.len() - start));
                out.extend_from_slice(v);
            }
            None => offsets.push(None),
        }
    }
    let payload_len = u32::try_from(out.len() - start - HEADER).expect("frames are below 4 GiB");
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    offsets
}

/// Bytes [`encode`] writes for `ops`.
pub fn size(ops: &[WriteOp]) -> usize {
    HEADER
        + 1
        + ops
            .iter()
            .map(|(k, v)| 3 + k.len() + v.as_ref().map_or(0, |v| 4 + v.len()))
            .sum::<usize>()
}

/// What [`decode`] found at the start of `buf`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, intact frame of `len` bytes.
    Frame { len: usize, ops: Vec<Op<'a>> },
    /// Not a whole intact frame: cut short, a checksum mismatch or a malformed payload.
    Bad(&'static str),
}

/// Decodes the frame at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER {
        return Decoded::Bad("truncated frame header");
    }
    let payload_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let Some(payload) = buf.get(HEADER..HEADER + payload_len) else {
        return Decoded::Bad("truncated frame");
    };
    if payload_len == 0 || crc32fast::hash(payload) != crc {
        return Decoded::Bad("frame checksum mismatch");
    }
    match parse(payload) {
        Some(ops) => Decoded::Frame {
            len: HEADER + payload_len,
            ops,
        },
        None => Decoded::Bad("malformed frame payload"),
    }
}

fn parse(payload: &[u8]) -> Option<Vec<Op<'_>>> {
    if payload.first() != Some(&VERSION) {
        return None;
    }
    let mut ops = Vec::new();
    let mut at = 1;
    while at < payload.len() {
        let tag = payload[at];
        let key_len = u16::from_le_bytes(payload.get(at + 1..at + 3)?.try_into().ok()?) as usize;
        let key = payload.get(at + 3..at + 3 + key_len)?;
        at += 3 + key_len;
        match tag {
            PUT => {
                let len = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
                payload.get(at + 4..at + 4 + len)?;
                ops.push(Op::Put {
                    key,
                    value_off: HEADER + at + 4,
                    value_len: len,
                });
                at += 4 + len;
            }
            DEL => ops.push(Op::Del { key }),
            _ => return None,
        }
    }
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let ops = vec![
            (b"m1".to_vec(), Some(b"hello".to_vec())),
            (b"gone".to_vec(), None),
            (b"m2".to_vec(), Some(Vec::new())),
        ];
        let mut buf = b"prefix".to_vec();
        let offsets = encode(&ops, &mut buf);
        assert_eq!(buf.len() - 6, size(&ops));
        let frame = &buf[6..];
        let Decoded::Frame { len, ops: decoded } = decode(frame) else {
            panic!("intact frame")
        };
        assert_eq!(len, frame.len());
        assert_eq!(decoded.len(), 3);
        match decoded[0] {
            Op::Put {
                key,
                value_off,
                value_len,
            } => {
                assert_eq!(key, b"m1");
                assert_eq!(Some(value_off), offsets[0]);
                assert_eq!(&frame[value_off..value_off + value_len], b"hello");
            }
            _ => panic!("put"),
        }
        assert_eq!(decoded[1], Op::Del { key: b"gone" });
        assert_eq!(offsets[1], None);

        for cut in 0..frame.len() {
            assert!(
                matches!(decode(&frame[..cut]), Decoded::Bad(_)),
                "cut {cut}"
            );
        }
        let mut flipped = frame.to_vec();
        flipped[HEADER + 3] ^= 1;
        assert_eq!(decode(&flipped), Decoded::Bad("frame checksum mismatch"));
        assert!(
            matches!(decode(&[0u8; 64]), Decoded::Bad(_)),
            "zeros are no frame"
        );
    }
}
