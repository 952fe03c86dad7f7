//! Hot reload: swaps under load, failed loads, the watched directory.

use crate::support::wait::Wait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use switchyard::message::Message;
use switchyard::plugin::{PluginHost, RouteContext};

use super::{memory_host, open_host, queues, with_config};
use crate::support::plugins::{rust_plugin_bytes, with_custom_section};

fn version_of(host: &PluginHost, name: &str) -> u32 {
    let verdict = host
        .route(name, &Message::new("x"), &RouteContext::default())
        .wait()
        .expect("call must not fail");
    let q = queues(&verdict);
    assert_eq!(q.len(), 1, "exactly one version answers: {q:?}");
    q[0].parse().expect("version number")
}

#[test]
fn swaps_under_load_never_fail_a_call() {
    const VERSIONS: u32 = 20;
    const THREADS: usize = 4;
    let host = memory_host();
    let base = rust_plugin_bytes("test_echo_version");
    host.deploy(
        "v",
        &with_custom_section(&base, "0"),
        with_config(&[("version", "0")]),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (host, stop, start) = (host.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let v = version_of(&host, "v");
                    // Swaps are atomic and ordered: a thread never sees an older version again.
                    assert!(
                        seen.last().is_none_or(|last| *last <= v),
                        "went back from {seen:?} to {v}"
                    );
                    if seen.last() != Some(&v) {
                        seen.push(v);
                    }
                }
                // One call after `stop`, which is set only after the last deploy returned: on a
                // loaded machine a thread may not have been scheduled since then.
                let v = version_of(&host, "v");
                if seen.last() != Some(&v) {
                    seen.push(v);
                }
                seen
            })
        })
        .collect();
    start.wait();
    for version in 1..=VERSIONS {
        let tag = version.to_string();
        host.deploy(
            "v",
            &with_custom_section(&base, &tag),
            with_config(&[("version", &tag)]),
        )
        .unwrap();
        // Once deploy returns, the new version answers.
        assert_eq!(version_of(&host, "v"), version);
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let seen = w.join().expect("a caller failed");
        assert_eq!(
            seen.last(),
            Some(&VERSIONS),
            "callers end on the last version: {seen:?}"
        );
    }
    let stats = host.stats("v").unwrap();
    assert_eq!(stats.ok, stats.calls, "{stats:?}");
    assert!(
        stats.calls > 100,
        "load was too light to mean anything: {stats:?}"
    );
    assert_eq!(host.show("v").unwrap().history.len(), VERSIONS as usize + 1);
}

#[test]
fn a_failed_load_leaves_the_old_version_serving() {
    let host = memory_host();
    let base = rust_plugin_bytes("test_echo_version");
    let v1 = host
        .deploy("v", &base, with_config(&[("version", "1")]))
        .unwrap();
    let err = host
        .deploy("v", b"\0asm garbage", Default::default())
        .unwrap_err();
    assert_eq!(err.kind(), "not_a_component");
    assert_eq!(version_of(&host, "v"), 1);
    assert_eq!(host.current("v").unwrap().1, v1.version);
    assert!(host
        .load_error("v")
        .unwrap()
        .contains("not a wasm component"));
    // A filter cannot replace a router under the same name.
    let err = host
        .deploy("v", &rust_plugin_bytes("size_filter"), Default::default())
        .unwrap_err();
    assert_eq!(err.kind(), "wrong_world", "{err}");
    assert_eq!(version_of(&host, "v"), 1);
    assert_eq!(host.host_stats().failed_loads, 2);
    // A good version clears the error.
    host.deploy(
        "v",
        &with_custom_section(&base, "2"),
        with_config(&[("version", "2")]),
    )
    .unwrap();
    assert_eq!(version_of(&host, "v"), 2);
    assert!(host.load_error("v").is_none());
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watched_directory_picks_up_new_and_changed_files() {
    let data = tempfile::tempdir().unwrap();
    let watched = tempfile::tempdir().unwrap();
    let host = open_host(data.path());
    let _watcher = host
        .watch_dir(watched.path(), Duration::from_millis(50))
        .unwrap();
    let base = rust_plugin_bytes("test_echo_version");

    // Write elsewhere, then rename in: the watcher never sees a half-written file.
    let drop_in = |name: &str, bytes: &[u8], version: &str| {
        let staging = data.path().join("staging.tmp");
        std::fs::write(&staging, bytes).unwrap();
        std::fs::write(
            watched.path().join(format!("{name}.config.json")),
            format!(r#"{{"version":"{version}"}}"#),
        )
        .unwrap();
        std::fs::rename(&staging, watched.path().join(format!("{name}.wasm"))).unwrap();
    };
    drop_in("echo", &base, "1");
    wait_for("first version", || host.current("echo").is_some());
    assert_eq!(version_of(&host, "echo"), 1);

    drop_in("echo", &with_custom_section(&base, "2"), "2");
    wait_for("second version", || version_of(&host, "echo") == 2);

    // A broken file keeps version 2 serving and reports why.
    std::fs::write(watched.path().join("echo.wasm"), b"not wasm").unwrap();
    wait_for("load error", || host.load_error("echo").is_some());
    assert!(host
        .load_error("echo")
        .unwrap()
        .contains("not a wasm component"));
    assert_eq!(version_of(&host, "echo"), 2);

    // One-shot scan API: deploys what is there.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("hr.wasm"),
        rust_plugin_bytes("header_router"),
    )
    .unwrap();
    let results = host.scan_dir(other.path());
    assert_eq!(results.len(), 1);
    assert!(results[0].1.is_ok(), "{results:?}");
    assert!(host.current("hr").is_some());
}
