//! The penalty lane: a version whose call was costly (a trap, a timeout, a limit hit, a long
//! computation) has its calls run on the low-priority lane thread until it has run clean for
//! 64 calls in a row; other plugins never wait for it.

use std::time::Duration;

use switchyard::message::Message;
use switchyard::plugin::{HostConfig, PluginError, PluginHost, PluginLimits, RouteContext};

use super::{host_config, memory_host, queues, with_limits};
use crate::support::plugins::rust_plugin_bytes;
use crate::support::wait::Wait;

/// Clean calls in the lane that bring a version back (`penalty::CLEAN_CALLS`).
const CLEAN_CALLS: u64 = 64;

fn ctx() -> RouteContext {
    RouteContext::default()
}

fn deploy(host: &PluginHost, name: &str, component: &str) {
    host.deploy(name, &rust_plugin_bytes(component), Default::default())
        .unwrap();
}

fn route(host: &PluginHost, plugin: &str, body: &str) -> Result<Vec<String>, PluginError> {
    host.route(plugin, &Message::new(body.to_string()), &ctx())
        .wait()
        .map(|v| queues(&v))
}

#[test]
fn a_trap_sends_the_version_to_the_lane_and_clean_calls_bring_it_back() {
    let host = memory_host();
    deploy(&host, "trapper", "test_trapper");
    assert_eq!(route(&host, "trapper", "fine").unwrap(), ["ok"]);
    assert_eq!(host.penalized("trapper"), Some(false));

    assert!(matches!(
        route(&host, "trapper", "trap"),
        Err(PluginError::Trap { .. })
    ));
    assert_eq!(host.penalized("trapper"), Some(true));

    // A reported error is clean: it counts toward the way back.
    assert!(matches!(
        route(&host, "trapper", "error"),
        Err(PluginError::PluginReported { .. })
    ));
    for i in 1..CLEAN_CALLS {
        assert_eq!(route(&host, "trapper", "fine").unwrap(), ["ok"]);
        let expected = i + 1 < CLEAN_CALLS;
        assert_eq!(
            host.penalized("trapper"),
            Some(expected),
            "after {i} clean calls"
        );
    }
    let stats = host.stats("trapper").unwrap();
    assert_eq!(stats.lane_calls, CLEAN_CALLS);
    assert_eq!(stats.calls, CLEAN_CALLS + 2);

    // Back on the serving path: calls no longer go through the lane.
    assert_eq!(route(&host, "trapper", "fine").unwrap(), ["ok"]);
    assert_eq!(host.stats("trapper").unwrap().lane_calls, CLEAN_CALLS);
    assert!(!host.show("trapper").unwrap().penalized);
}

#[test]
fn a_looping_version_keeps_timing_out_in_the_lane_while_others_are_served() {
    let host = memory_host();
    deploy(&host, "healthy", "test_trapper");
    let limits = PluginLimits {
        timeout: Duration::from_millis(40),
        ..PluginLimits::default()
    };
    host.deploy(
        "looper",
        &rust_plugin_bytes("test_looper"),
        with_limits(limits),
    )
    .unwrap();
    let timeout =
        |r: Result<Vec<String>, PluginError>| matches!(r, Err(PluginError::Timeout { .. }));
    assert!(timeout(route(&host, "looper", "x")));
    assert_eq!(host.penalized("looper"), Some(true));

    // Two looper calls in the lane at once, and healthy calls meanwhile on this thread.
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || route(&host, "looper", "x"))
        })
        .collect();
    for _ in 0..50 {
        assert_eq!(route(&host, "healthy", "fine").unwrap(), ["ok"]);
    }
    for handle in loops {
        assert!(timeout(handle.join().unwrap()));
    }
    let stats = host.stats("looper").unwrap();
    assert_eq!((stats.timeouts, stats.lane_calls), (3, 2));
    assert_eq!(host.penalized("healthy"), Some(false));
    assert_eq!(host.stats("healthy").unwrap().lane_calls, 0);
}

#[test]
fn a_slow_call_that_succeeds_is_penalized_too() {
    let host = memory_host();
    deploy(&host, "spinner", "test_looper");
    let spin = |ms: &str| {
        let msg = Message::new("x").with_header("spin-ms", ms);
        host.route("spinner", &msg, &ctx()).wait()
    };
    // The looper drops what it has spun on.
    assert!(spin("1").is_ok());
    assert_eq!(host.penalized("spinner"), Some(false));
    assert!(spin("60").is_ok(), "60 ms is under the 5 s test deadline");
    assert_eq!(host.penalized("spinner"), Some(true));
    assert!(spin("1").is_ok());
    assert_eq!(host.stats("spinner").unwrap().lane_calls, 1);
}

#[test]
fn dry_run_logs_come_back_from_the_lane() {
    let host = memory_host();
    deploy(&host, "trapper", "test_trapper");
    let trapper = host.serving("trapper").unwrap();
    let trap = trapper.route(&Message::new("trap"), &ctx(), true).wait();
    assert!(trap.result.is_err());
    assert_eq!(host.penalized("trapper"), Some(true));
    let fine = trapper.route(&Message::new("fine"), &ctx(), true).wait();
    assert_eq!(queues(&fine.result.unwrap()), ["ok"]);
    assert!(
        fine.logs.iter().any(|l| l.message.contains("fine")),
        "{:?}",
        fine.logs
    );
    assert_eq!(host.stats("trapper").unwrap().lane_calls, 1);
}

#[test]
fn without_the_lane_nothing_is_penalized() {
    let host = PluginHost::in_memory(HostConfig {
        penalty_lane: false,
        ..host_config()
    })
    .unwrap();
    deploy(&host, "trapper", "test_trapper");
    assert!(route(&host, "trapper", "trap").is_err());
    assert_eq!(route(&host, "trapper", "fine").unwrap(), ["ok"]);
    assert_eq!(host.penalized("trapper"), Some(false));
    assert_eq!(host.stats("trapper").unwrap().lane_calls, 0);
}
