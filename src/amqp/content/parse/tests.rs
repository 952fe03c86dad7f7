use amq_protocol::frame::{parse_frame, AMQPFrame};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::amqp::content::tests::{message, reference};
use crate::amqp::reader::damage;

/// amq-protocol's reading of a header frame's payload, if it accepts it.
fn amqp(payload: &[u8]) -> Option<AMQPContentHeader> {
    let mut frame = vec![2, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(0xCE);
    match parse_frame(&frame[..]) {
        Ok((_, AMQPFrame::Header(_, h))) => Some(h),
        _ => None,
    }
}

/// Both readings agree on everything the channel and the broker use.
fn assert_same(payload: &[u8], ours: ParsedHeader, theirs: AMQPContentHeader, what: &str) {
    let (ours, theirs) = (Header::Parsed(ours), Header::Amqp(theirs));
    assert_eq!(ours.class_id(), theirs.class_id(), "{what}");
    assert_eq!(ours.body_size(), theirs.body_size(), "{what}");
    assert_eq!(ours.header_entries(), theirs.header_entries(), "{what}");
    assert_eq!(ours.user_id(), theirs.user_id(), "{what}");
    let body = Bytes::from_static(b"body");
    match (ours.into_message(body.clone()), theirs.into_message(body)) {
        (Ok(mut a), Ok(b)) => {
            // A missing or empty message id is generated on both sides: two different ones.
            let sent = amqp(payload).and_then(|h| h.properties.message_id().clone());
            if sent.is_none_or(|id| id.as_str().is_empty()) {
                a.id = b.id.clone();
            }
            assert_eq!(a, b, "{what}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{what}"),
        (a, b) => panic!("{what}: {a:?} against {b:?}"),
    }
}

#[test]
fn reads_what_amq_protocol_reads_for_every_property_and_value_type() {
    let mut rng = StdRng::seed_from_u64(11);
    for i in 0..3000 {
        let m = message(&mut rng);
        let frame = reference(1, &m);
        let payload = &frame[7..frame.len() - 1];
        let ours = parse_header(payload).unwrap_or_else(|| panic!("message {i} declined: {m:?}"));
        let theirs = amqp(payload).expect("amq-protocol reads its own encoding");
        assert_same(payload, ours, theirs, &format!("message {i}"));
    }
}

#[test]
fn damaged_headers_are_read_as_amq_protocol_reads_them_or_declined() {
    let mut rng = StdRng::seed_from_u64(12);
    let (mut accepted, mut declined) = (0, 0);
    for i in 0..20_000 {
        let m = message(&mut rng);
        let frame = reference(1, &m);
        let mut payload = frame[7..frame.len() - 1].to_vec();
        let edits = rng.random_range(1..4);
        damage(&mut rng, &mut payload, edits);
        match parse_header(&payload) {
            None => declined += 1,
            Some(ours) => {
                let theirs = amqp(&payload)
                    .unwrap_or_else(|| panic!("damage {i} accepted, amq-protocol refuses it"));
                assert_same(&payload, ours, theirs, &format!("damage {i}"));
                accepted += 1;
            }
        }
    }
    assert!(
        accepted > 1000 && declined > 1000,
        "{accepted} / {declined}"
    );
}

#[test]
fn a_bad_expiration_is_the_same_error_either_way() {
    let mut m = Message::new(&b""[..]).with_id("x");
    m.properties.expiration_ms = Some(5);
    let frame = reference(1, &m);
    let mut payload = frame[7..frame.len() - 1].to_vec();
    let at = payload
        .iter()
        .rposition(|&b| b == b'5')
        .expect("the expiration digit");
    payload[at] = b'z';
    let ours = parse_header(&payload).expect("a short string like any other");
    let theirs = amqp(&payload).expect("amq-protocol reads it");
    assert_same(&payload, ours, theirs, "bad expiration");
    let err = Header::Parsed(parse_header(&payload).unwrap())
        .into_message(Bytes::new())
        .unwrap_err();
    assert_eq!(err, "invalid expiration \"z\"");
}
