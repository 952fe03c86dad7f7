//! Arbitrary bytes through the frame reader; decoded frames must re-encode faithfully.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::amqp::fuzzing::decode_frames(data);
});
