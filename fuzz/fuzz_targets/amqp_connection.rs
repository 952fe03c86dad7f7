//! Arbitrary bytes (after an optional valid prelude) on a real connection to a real broker.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard::amqp::fuzzing::Harness;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("switchyard-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Harness::open(&dir).expect("open the fuzz broker")
    })
}

fuzz_target!(|data: &[u8]| {
    harness().run(data);
});
