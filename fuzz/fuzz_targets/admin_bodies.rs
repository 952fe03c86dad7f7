//! One request with a fuzzed route, name, query and body through the real admin router, against
//! a real broker: no panic, no 5xx, JSON errors, and the broker still healthy afterwards.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard::admin::fuzzing::Harness;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("switchyard-fuzz-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Harness::open(&dir).expect("open the fuzz broker")
    })
}

fuzz_target!(|data: &[u8]| {
    harness().run(data);
});
