//! Fuzzing entry points for the message record codec, shared by the cargo-fuzz target
//! `message_codec` and the regression test that replays saved inputs. Not part of the API.
//!
//! Also home of [`Input`] and [`message`], which build structured values from fuzz bytes
//! without the `arbitrary` crate (one dependency less for the library), and of [`same`], the
//! equality that fuzz properties need because `NaN != NaN` under `PartialEq`.

use bytes::Bytes;

use super::{FieldValue, Headers, Lineage, Message, MessageId, Properties, RECORD_VERSION};

/// Fuzz bytes read front to back as small structured values. Exhausted input reads as zeros,
/// so every input builds *something* and short inputs build small values.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// What is left, unread.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte();
        }
        out
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Up to `max` bytes; the length comes from one byte, so it stays small unless `max` is.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let want = usize::from(self.byte()).min(max).min(self.data.len());
        let (head, tail) = self.data.split_at(want);
        self.data = tail;
        head
    }

    /// A string of up to `max` bytes of input (invalid UTF-8 replaced, so it may grow a bit).
    pub fn string(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }

    /// `Some(f(self))` when the next byte is odd.
    pub fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.bool().then(|| f(self))
    }
}

/// Nesting depth of tables and arrays built by [`value`]: deep enough to reach the recursive
/// code paths, shallow enough to keep inputs fast.
const MAX_DEPTH: usize = 3;

/// A header value of any type, nested up to [`MAX_DEPTH`].
pub fn value(input: &mut Input<'_>, depth: usize) -> FieldValue {
    let kinds = if depth >= MAX_DEPTH { 16 } else { 18 };
    match input.byte() % kinds {
        0 => FieldValue::Void,
        1 => FieldValue::Bool(input.bool()),
        2 => FieldValue::I8(input.byte() as i8),
        3 => FieldValue::U8(input.byte()),
        4 => FieldValue::I16(input.u16() as i16),
        5 => FieldValue::U16(input.u16()),
        6 => FieldValue::I32(input.u32() as i32),
        7 => FieldValue::U32(input.u32()),
        8 => FieldValue::I64(input.u64() as i64),
        9 => FieldValue::U64(input.u64()),
        // From bits: every NaN payload and signed zero is reachable.
        10 => FieldValue::F32(f32::from_bits(input.u32())),
        11 => FieldValue::F64(f64::from_bits(input.u64())),
        12 => FieldValue::Decimal {
            scale: input.byte(),
            value: input.u32(),
        },
        13 => FieldValue::String(input.string(64)),
        14 => FieldValue::Bytes(Bytes::copy_from_slice(input.bytes(64))),
        15 => FieldValue::Timestamp(input.u64()),
        16 => FieldValue::Table(headers(input, depth + 1)),
        _ => {
            let n = input.byte() % 5;
            FieldValue::Array((0..n).map(|_| value(input, depth + 1)).collect())
        }
    }
}

/// A headers table of up to 7 entries.
pub fn headers(input: &mut Input<'_>, depth: usize) -> Headers {
    let n = input.byte() % 8;
    (0..n)
        .map(|_| (input.string(16), value(input, depth)))
        .collect()
}

pub fn properties(input: &mut Input<'_>) -> Properties {
    Properties {
        content_type: input.option(|i| i.string(32)),
        content_encoding: input.option(|i| i.string(32)),
        persistent: input.bool(),
        priority: input.option(Input::byte),
        correlation_id: input.option(|i| i.string(32)),
        reply_to: input.option(|i| i.string(32)),
        expiration_ms: input.option(Input::u64),
        timestamp: input.option(Input::u64),
        kind: input.option(|i| i.string(32)),
        user_id: input.option(|i| i.string(32)),
        app_id: input.option(|i| i.string(32)),
    }
}

/// A message built from fuzz bytes: any id (even empty: the codec must not care), any
/// properties and headers, and a body of up to 255 bytes.
pub fn message(input: &mut Input<'_>) -> Message {
    Message {
        id: MessageId::from(input.string(40)),
        properties: properties(input),
        headers: headers(input, 0),
        body: Bytes::copy_from_slice(input.bytes(255)),
        lineage: lineage(input),
    }
}

/// Up to 3 lineage entries.
fn lineage(input: &mut Input<'_>) -> Lineage {
    let mut lineage = Lineage::default();
    for _ in 0..input.byte() % 4 {
        lineage.push(&input.string(24).into());
    }
    lineage
}

/// Equality where floats compare by bits, so a NaN header equals itself.
pub fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::F32(x), FieldValue::F32(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::F64(x), FieldValue::F64(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::Table(x), FieldValue::Table(y)) => same_headers(x, y),
        (FieldValue::Array(x), FieldValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        _ => a == b,
    }
}

pub fn same_headers(a: &Headers, b: &Headers) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

/// [`Message`] equality with floats compared by bits.
pub fn same(a: &Message, b: &Message) -> bool {
    a.id == b.id
        && a.properties == b.properties
        && a.body == b.body
        && a.lineage == b.lineage
        && same_headers(&a.headers, &b.headers)
}

/// The `message_codec` target. The first byte picks what the rest is:
/// - `% 3 == 0`: a stored record, decoded as is (the version byte is fuzzed too);
/// - `% 3 == 1`: a record body after a valid version byte (so the fuzzer starts in MessagePack);
/// - `% 3 == 2`: the recipe of a [`message`]; it must survive encode → decode unchanged.
///
/// Decoding must never panic: garbage is a [`super::CodecError`]. A record that does decode
/// must encode again, and that encoding must decode to the same message.
pub fn message_codec(data: &[u8]) {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    match first % 3 {
        0 => decode_record(rest),
        1 => decode_record(&[&[RECORD_VERSION][..], rest].concat()),
        _ => round_trip(&message(&mut Input::new(rest))),
    }
}

fn decode_record(record: &[u8]) {
    match Message::decode(record) {
        Ok(msg) => round_trip(&msg),
        Err(e) => assert!(!e.to_string().is_empty(), "an error says why"),
    }
}

/// Panics unless `msg` encodes and decodes back to itself.
pub fn round_trip(msg: &Message) {
    let bytes = msg
        .encode()
        .unwrap_or_else(|e| panic!("{msg:?} does not encode: {e}"));
    match Message::decode(&bytes) {
        Ok(again) => assert!(same(&again, msg), "{msg:?} decodes as {again:?}"),
        Err(e) => panic!("the encoding of {msg:?} does not decode: {e}"),
    }
}
