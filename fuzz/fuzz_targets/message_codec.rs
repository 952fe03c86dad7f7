//! Stored message records: arbitrary bytes must decode or fail cleanly; built messages must
//! survive encode → decode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::message::fuzzing::message_codec(data);
});
