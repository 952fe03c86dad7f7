//! What a plugin returns, as hostile input: size accounting and conversion to the broker's
//! verdict must hold for any result a component could produce.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchyard::plugin::fuzzing::plugin_verdict(data);
});
