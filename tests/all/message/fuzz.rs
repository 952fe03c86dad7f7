//! Replays the `message_codec` fuzz target's saved inputs through the same entry point
//! (`switchyard::message::fuzzing`), so `cargo test` guards them without cargo-fuzz.

use switchyard::message::fuzzing::{message_codec, round_trip};
use switchyard::message::{FieldValue, Message, MAX_NESTING, RECORD_VERSION};

use crate::support::fuzz::replay;

#[test]
fn saved_fuzz_inputs_replay_cleanly() {
    replay("message_codec", 10, message_codec);
}

#[test]
fn garbage_records_are_errors_and_odd_values_round_trip() {
    for record in [
        &b""[..],
        &[RECORD_VERSION],
        &[RECORD_VERSION, 0xc1],
        &[RECORD_VERSION, 0xdf, 0xff, 0xff, 0xff, 0xff],
        &[2, 0x90],
    ] {
        assert!(Message::decode(record).is_err(), "{record:?}");
        message_codec(&[[0].as_slice(), record].concat());
    }
    let msg = Message::new(&b""[..])
        .with_id("")
        .with_header("nan", FieldValue::F64(f64::NAN))
        .with_header("-0", FieldValue::F32(-0.0))
        .with_header(
            "",
            FieldValue::Array(vec![FieldValue::Table(Default::default())]),
        );
    round_trip(&msg);
}

/// A record nested as deep as MessagePack allows must be refused without exhausting a test
/// thread's stack (the depth a decoder recurses to is the attacker's): rmp-serde's own bound,
/// 1024 levels, overflowed 2 MiB in a debug build until the codec bounded it by MAX_NESTING.
#[test]
fn deeply_nested_records_do_not_overflow_the_stack() {
    let msg = Message::new(&b"x"[..]).with_id("deep");
    let plain = msg.encode().unwrap();
    // Replace the empty headers map (0x80) with {"h": [[[...]]]}.
    let at = plain
        .iter()
        .position(|&b| b == 0x80)
        .expect("empty headers map");
    for levels in [MAX_NESTING, MAX_NESTING + 1, 300, 2000] {
        let mut nested = vec![0x81, 0xa1, b'h'];
        for _ in 0..levels {
            nested.extend_from_slice(&[0x81, 0xa5]); // {"Array": [x]}
            nested.extend_from_slice(b"Array");
            nested.push(0x91);
        }
        nested.push(0xa4);
        nested.extend_from_slice(b"Void");
        let mut record = plain.clone();
        record.splice(at..at + 1, nested);
        let decoded = Message::decode(&record);
        assert_eq!(decoded.is_ok(), levels <= MAX_NESTING, "{levels} levels");
        message_codec(&[[0].as_slice(), &record].concat());
    }
}
