//! Replays the `admin_bodies` fuzz target's saved inputs through the same harness
//! (`switchyard::admin::fuzzing`: the real router, a real broker), so `cargo test` guards them
//! without cargo-fuzz. The harness panics on a 5xx, a non-JSON reply, an error without a
//! message, or a broker that no longer answers its health probe.

use axum::http::StatusCode;
use switchyard::admin::fuzzing::Harness;

use crate::support::fuzz::replay;

#[test]
fn saved_fuzz_inputs_replay_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::open(dir.path()).unwrap();
    replay("admin_bodies", 10, |input| {
        harness.run(input);
    });
}

#[test]
fn garbage_bodies_on_every_route_are_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::open(dir.path()).unwrap();
    for route in 0..22u8 {
        for flags in [0x00, 0x20, 0x40, 0x4f] {
            for body in [&b""[..], b"{", b"[]", b"null", b"{\"x\":1}", b"\xff\xfe"] {
                let input = [&[route, flags][..], body].concat();
                let reply = harness.run(&input);
                assert!(!reply.status.is_server_error(), "{input:?}: {reply:?}");
            }
        }
    }
    // The prelude itself works, and reset empties the broker again.
    harness.prelude();
    let r = harness.request("GET", "/api/queues/fuzz", None, Vec::new());
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["messages"], 2, "{r:?}");
    harness.reset();
    let r = harness.request("GET", "/api/queues/fuzz", None, Vec::new());
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
}
