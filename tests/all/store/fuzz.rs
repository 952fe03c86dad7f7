//! Replays the `store_frame` fuzz target's saved inputs through the same entry point
//! (`switchyard::store::fuzzing`), so `cargo test` guards them without cargo-fuzz.

use switchyard::store::fuzzing::{round_trip, store_frame, with_header};

use crate::support::fuzz::replay;

#[test]
fn saved_fuzz_inputs_replay_cleanly() {
    replay("store_frame", 10, store_frame);
}

#[test]
fn forged_headers_over_bad_payloads_are_refused() {
    // Right length and checksum, wrong contents: an op running past the payload, an unknown
    // op, a wrong version, a key length past the end.
    for payload in [
        &[1, 1, 2, 0, b'k', b'k', 9, 0, 0, 0, b'v'][..],
        &[1, 3, 0, 0],
        &[2],
        &[1, 2, 0xff, 0xff, b'k'],
    ] {
        store_frame(&[[1].as_slice(), payload].concat());
        let framed = with_header(payload);
        store_frame(&[[0].as_slice(), &framed].concat());
    }
    round_trip(&[]);
    round_trip(&[
        (b"".to_vec(), Some(Vec::new())),
        (vec![0xff; 300], None),
        (b"k".to_vec(), Some(vec![7; 70_000])),
    ]);
}
