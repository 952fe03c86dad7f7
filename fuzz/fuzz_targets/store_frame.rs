//! Message-log frames as recovery reads them from a segment: damaged bytes must be refused,
//! never trusted, and intact frames must decode to what was written.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::store::fuzzing::store_frame(data);
});
