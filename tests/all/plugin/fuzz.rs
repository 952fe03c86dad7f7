//! Replays the `plugin_verdict` fuzz target's saved inputs through the same entry point
//! (`switchyard::plugin::fuzzing`), so `cargo test` guards them without cargo-fuzz.

use switchyard::plugin::fuzzing::plugin_verdict;

use crate::support::fuzz::replay;

#[test]
fn saved_fuzz_inputs_replay_cleanly() {
    replay("plugin_verdict", 10, plugin_verdict);
}

#[test]
fn short_and_empty_inputs_convert() {
    for input in [&b""[..], &[0], &[1], &[0, 2, 4], &[1, 0xff, 0xff, 0xff]] {
        plugin_verdict(input);
    }
}
