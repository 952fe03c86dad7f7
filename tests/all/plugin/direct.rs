//! Direct calls (the fast path on the caller's stack) and the move to fibers: a plugin that
//! reaches a blocking WASI import (a sleep; printing is not one), or keeps overrunning its
//! direct budget, is answered on a fiber and stays there; every other plugin keeps going direct.

use std::time::{Duration, Instant};

use switchyard::message::Message;
use switchyard::plugin::{HostConfig, PluginError, PluginHost, PluginLimits, RouteContext};

use super::{host_config, memory_host, queues, with_config, with_limits};
use crate::support::plugins::rust_plugin_bytes;
use crate::support::wait::Wait;

fn ctx() -> RouteContext {
    RouteContext::default()
}

fn with_mode(mode: &str) -> Message {
    Message::new("x").with_header("mode", mode)
}

#[test]
fn a_rust_router_is_called_directly() {
    // A long tick: on a loaded test machine a trivial call descheduled past a short tick would
    // count as an overrun, and this test is about the steady state.
    let host = PluginHost::in_memory(HostConfig {
        epoch_tick: Duration::from_millis(50),
        ..host_config()
    })
    .unwrap();
    host.deploy(
        "hr",
        &rust_plugin_bytes("header_router"),
        with_config(&[("route.eu", "q-eu"), ("default", "q-other")]),
    )
    .unwrap();
    assert_eq!(host.direct_calls("hr"), Some(true));
    for i in 0..200 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        let msg = Message::new("x").with_header("route", region);
        let verdict = host.route("hr", &msg, &ctx()).wait().unwrap();
        assert_eq!(
            queues(&verdict),
            [if i % 2 == 0 { "q-eu" } else { "q-other" }]
        );
    }
    assert_eq!(host.direct_calls("hr"), Some(true));
    assert_eq!(host.show("hr").unwrap().stats.calls, 200);
}

/// Every mode of the blocker, on whatever runtime `run` uses.
fn blocking_imports_are_answered(host: &PluginHost, run: impl Fn(Message) -> Vec<String>) {
    host.deploy(
        "blocker",
        &rust_plugin_bytes("test_blocker"),
        Default::default(),
    )
    .unwrap();
    assert_eq!(run(with_mode("none")), ["done"]);
    assert_eq!(
        host.direct_calls("blocker"),
        Some(true),
        "no blocking import reached yet"
    );
    assert_eq!(run(with_mode("print")), ["done"]);
    assert_eq!(
        host.direct_calls("blocker"),
        Some(true),
        "stdout and stderr are always ready"
    );
    let started = Instant::now();
    assert_eq!(run(with_mode("sleep")), ["done"]);
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "the guest slept"
    );
    assert_eq!(
        host.direct_calls("blocker"),
        Some(false),
        "a sleep moved it to fibers"
    );
    assert_eq!(run(with_mode("none")), ["done"]);
    let stats = host.show("blocker").unwrap().stats;
    assert_eq!(
        (stats.calls, stats.traps, stats.timeouts),
        (4, 0, 0),
        "escapes are not failures"
    );
}

#[test]
fn blocking_wasi_moves_a_plugin_to_fibers_on_a_current_thread_runtime() {
    let host = memory_host();
    blocking_imports_are_answered(&host, |msg| {
        queues(&host.route("blocker", &msg, &ctx()).wait().unwrap())
    });
}

#[test]
fn blocking_wasi_moves_a_plugin_to_fibers_on_a_multi_thread_runtime() {
    // wasmtime-wasi's synchronous blocking functions would panic on a worker thread here: the
    // direct linker must never reach them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = memory_host();
    blocking_imports_are_answered(&host, |msg| {
        let host = host.clone();
        let task = runtime.spawn(async move { host.route("blocker", &msg, &ctx()).await });
        queues(&runtime.block_on(task).unwrap().unwrap())
    });
}

#[test]
fn a_plugin_that_keeps_overrunning_its_direct_budget_moves_to_fibers() {
    // Without the penalty lane: its first timeout would send the looper there, where calls
    // are not tried direct at all (`lane.rs` tests that path).
    let host = PluginHost::in_memory(HostConfig {
        penalty_lane: false,
        ..host_config()
    })
    .unwrap();
    let limits = PluginLimits {
        timeout: Duration::from_millis(30),
        ..PluginLimits::default()
    };
    let info = host
        .deploy(
            "looper",
            &rust_plugin_bytes("test_looper"),
            with_limits(limits),
        )
        .unwrap();
    assert_eq!(host.direct_calls("looper"), Some(true));
    for _ in 0..3 {
        let err = host
            .route("looper", &Message::new("x"), &ctx())
            .wait()
            .unwrap_err();
        assert_eq!(
            err,
            PluginError::Timeout {
                plugin: "looper".into(),
                version: info.version.clone(),
                limit: Duration::from_millis(30),
            },
            "an overrun is run again on a fiber, where the real deadline applies"
        );
    }
    assert_eq!(host.direct_calls("looper"), Some(false));
    assert_eq!(host.show("looper").unwrap().stats.timeouts, 3);
}
