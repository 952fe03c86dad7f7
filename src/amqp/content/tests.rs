use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::amqp::codec::encode;
use crate::amqp::convert::properties_to_amqp;
use crate::message::{Headers, LINEAGE_HEADER};

/// What amq-protocol writes for the same message.
pub(super) fn reference(channel: u16, m: &Message) -> Vec<u8> {
    let header = AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size: m.body.len() as u64,
            properties: properties_to_amqp(m),
        },
    );
    let mut out = Vec::new();
    encode(&header, &mut out).expect("amq-protocol encodes it");
    out
}

fn text(rng: &mut StdRng) -> String {
    let len = match rng.random_range(0..20) {
        0 => rng.random_range(250..300), // around the short-string limit
        1 => 0,
        _ => rng.random_range(1..24),
    };
    (0..len)
        .map(|_| char::from(rng.random_range(b'a'..=b'z')))
        .collect()
}

fn value(rng: &mut StdRng, depth: usize) -> FieldValue {
    let kinds = if depth >= 3 { 17 } else { 19 };
    match rng.random_range(0..kinds) {
        0 => FieldValue::Void,
        1 => FieldValue::Bool(rng.random()),
        2 => FieldValue::I8(rng.random()),
        3 => FieldValue::U8(rng.random()),
        4 => FieldValue::I16(rng.random()),
        5 => FieldValue::U16(rng.random()),
        6 => FieldValue::I32(rng.random()),
        7 => FieldValue::U32(rng.random()),
        8 => FieldValue::I64(rng.random()),
        9 => FieldValue::U64(if rng.random() {
            rng.random()
        } else {
            u64::MAX - 1
        }),
        10 => FieldValue::F32(rng.random()),
        11 => FieldValue::F64(rng.random()),
        12 => FieldValue::Decimal {
            scale: rng.random(),
            value: rng.random(),
        },
        13 => FieldValue::String(text(rng)),
        14 => FieldValue::Bytes(Bytes::from(text(rng).into_bytes())),
        15 | 16 => FieldValue::Timestamp(rng.random()),
        17 => FieldValue::Table(headers(rng, depth + 1)),
        _ => FieldValue::Array(
            (0..rng.random_range(0..4))
                .map(|_| value(rng, depth + 1))
                .collect(),
        ),
    }
}

fn headers(rng: &mut StdRng, depth: usize) -> Headers {
    (0..rng.random_range(0..5))
        .map(|_| (text(rng), value(rng, depth)))
        .collect()
}

pub(super) fn message(rng: &mut StdRng) -> Message {
    let maybe = |rng: &mut StdRng| rng.random::<bool>().then(|| text(rng));
    let mut m = Message::new(vec![0u8; rng.random_range(0..2000)]).with_id(text(rng));
    m.headers = headers(rng, 0);
    // Lineage shows as a header, between others in name order, after one that arrived.
    if rng.random_range(0..4) == 0 {
        let arrived = FieldValue::Array(vec![text(rng).into()]);
        m.headers.insert(LINEAGE_HEADER.into(), arrived);
    }
    for _ in 0..rng.random_range(0..3) {
        m.lineage.push(&text(rng).into());
    }
    let p = &mut m.properties;
    p.content_type = maybe(rng);
    p.content_encoding = maybe(rng);
    p.persistent = rng.random();
    p.priority = rng.random::<bool>().then(|| rng.random());
    p.correlation_id = maybe(rng);
    p.reply_to = maybe(rng);
    p.expiration_ms = rng.random::<bool>().then(|| rng.random());
    p.timestamp = rng.random::<bool>().then(|| rng.random());
    p.kind = maybe(rng);
    p.user_id = maybe(rng);
    p.app_id = maybe(rng);
    m
}

/// Whether amq-protocol's path would cut a short string (so ours must decline).
fn needs_truncation(m: &Message) -> bool {
    fn long_keys(h: &Headers) -> bool {
        h.iter().any(|(k, v)| k.len() > 255 || long_value(v))
    }
    fn long_value(v: &FieldValue) -> bool {
        match v {
            FieldValue::Table(t) => long_keys(t),
            FieldValue::Array(a) => a.iter().any(long_value),
            _ => false,
        }
    }
    let p = &m.properties;
    let strings = [
        &p.content_type,
        &p.content_encoding,
        &p.correlation_id,
        &p.reply_to,
        &p.kind,
        &p.user_id,
        &p.app_id,
    ];
    m.id.as_str().len() > 255
        || strings
            .iter()
            .any(|s| s.as_ref().is_some_and(|s| s.len() > 255))
        || long_keys(&m.headers)
}

#[test]
fn the_same_bytes_as_amq_protocol_for_every_property_and_value_type() {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut fast, mut declined) = (0, 0);
    for i in 0..5000u16 {
        let m = message(&mut rng);
        let mut out = vec![0xAA]; // something before: it must stay
        if encode_header(i, &m, &mut out) {
            assert_eq!(&out[1..], reference(i, &m), "message {i}: {m:?}");
            fast += 1;
        } else {
            assert_eq!(out, [0xAA], "declining leaves the buffer as it was");
            assert!(
                needs_truncation(&m),
                "message {i} declined needlessly: {m:?}"
            );
            declined += 1;
        }
    }
    assert!(
        fast > 1000 && declined > 100,
        "both paths exercised: {fast} / {declined}"
    );
}

#[test]
fn a_plain_message_has_the_two_properties_always_sent() {
    let m = Message::new(&b"hi"[..]).with_id("m-1");
    let mut out = Vec::new();
    assert!(encode_header(1, &m, &mut out));
    assert_eq!(out, reference(1, &m));
}
