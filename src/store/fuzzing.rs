//! Fuzzing entry point for the message log's frame decoder (the `store_frame` cargo-fuzz
//! target and its regression test). Not part of the API.
//!
//! Recovery runs [`frame::decode`] over whatever a crash or a bad disk left in a segment, so it
//! must treat every byte string as possibly damaged: report it as bad, never panic, never read
//! out of bounds, and never accept a frame that [`frame::encode`] could not have written.

use super::log::frame::{self, Decoded, Op, WriteOp, HEADER};
use crate::message::fuzzing::Input;

/// The first byte picks what the rest is:
/// - `% 3 == 0`: bytes at a segment offset, decoded as they are;
/// - `% 3 == 1`: a frame payload, wrapped in a header with the right length and checksum (the
///   fuzzer cannot forge a CRC, so without this it would never get past the checksum);
/// - `% 3 == 2`: the recipe of a list of writes; encoded, they must decode to the same writes.
pub fn store_frame(data: &[u8]) {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    match first % 3 {
        0 => check_decoded(rest),
        1 => check_decoded(&with_header(rest)),
        _ => round_trip(&ops(&mut Input::new(rest))),
    }
}

/// `payload` behind a header that matches it.
pub fn with_header(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("fuzz inputs are small");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Up to 7 writes with short keys and values, puts and removals mixed.
fn ops(input: &mut Input<'_>) -> Vec<WriteOp> {
    let n = input.byte() % 8;
    (0..n)
        .map(|_| {
            let key = input.bytes(40).to_vec();
            let value = input.option(|i| i.bytes(255).to_vec());
            (key, value)
        })
        .collect()
}

/// Decode `buf`; a frame it finds must lie inside `buf` and re-encode to the same bytes.
fn check_decoded(buf: &[u8]) {
    let Decoded::Frame { len, ops } = frame::decode(buf) else {
        return;
    };
    assert!(
        len <= buf.len(),
        "frame of {len} bytes in {} bytes",
        buf.len()
    );
    let writes: Vec<WriteOp> = ops
        .iter()
        .map(|op| match *op {
            Op::Put {
                key,
                value_off,
                value_len,
            } => {
                let value = buf
                    .get(value_off..value_off + value_len)
                    .unwrap_or_else(|| panic!("{op:?} points outside its {len}-byte frame"));
                (key.to_vec(), Some(value.to_vec()))
            }
            Op::Del { key } => (key.to_vec(), None),
        })
        .collect();
    let mut again = Vec::new();
    frame::encode(&writes, &mut again);
    assert_eq!(
        again,
        buf[..len],
        "an accepted frame is not what encode writes for its ops"
    );
}

/// Panics unless `writes` encode to [`frame::size`] bytes that decode to the same writes, with
/// the value offsets `encode` reported, and unless every cut-short copy is refused.
pub fn round_trip(writes: &[WriteOp]) {
    let mut buf = Vec::new();
    let offsets = frame::encode(writes, &mut buf);
    assert_eq!(
        buf.len(),
        frame::size(writes),
        "size() disagrees with encode"
    );
    // Bytes after a frame (the next frame, or garbage after a crash) do not change it.
    let total = buf.len();
    buf.extend_from_slice(b"\x07trailing");
    let Decoded::Frame { len, ops } = frame::decode(&buf) else {
        panic!("the encoding of {writes:?} does not decode");
    };
    assert_eq!(len, total);
    assert_eq!(ops.len(), writes.len());
    for ((op, (key, value)), offset) in ops.iter().zip(writes).zip(&offsets) {
        match (op, value) {
            (
                Op::Put {
                    key: k,
                    value_off,
                    value_len,
                },
                Some(v),
            ) => {
                assert_eq!((*k, Some(*value_off)), (key.as_slice(), *offset));
                assert_eq!(&buf[*value_off..value_off + value_len], v.as_slice());
            }
            (Op::Del { key: k }, None) => assert_eq!(*k, key.as_slice()),
            _ => panic!("{op:?} decoded for {key:?} => {value:?}"),
        }
    }
    for cut in [0, HEADER - 1, HEADER, total - 1] {
        assert!(
            matches!(frame::decode(&buf[..cut]), Decoded::Bad(_)),
            "a frame cut to {cut} of {total} bytes was accepted"
        );
    }
}
