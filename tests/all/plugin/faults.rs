//! Every fault, with a purpose-built misbehaving plugin: each test asserts the structured error
//! and that the host still serves (other plugins, and the faulty one again where it can).

use crate::support::wait::Wait;
use std::time::{Duration, Instant};

use switchyard::message::Message;
use switchyard::plugin::{PluginError, PluginHost, PluginLimits, RouteContext};

use super::{memory_host, queues, with_config, with_limits};
use crate::support::plugins::rust_plugin_bytes;

fn ctx() -> RouteContext {
    RouteContext::default()
}

/// Deploys the header router as `healthy` and checks it answers.
fn deploy_healthy(host: &PluginHost) {
    host.deploy(
        "healthy",
        &rust_plugin_bytes("header_router"),
        with_config(&[("default", "fine")]),
    )
    .unwrap();
    assert_healthy(host);
}

fn assert_healthy(host: &PluginHost) {
    assert_eq!(
        queues(
            &host
                .route("healthy", &Message::new("x"), &ctx())
                .wait()
                .unwrap()
        ),
        ["fine"]
    );
}

#[test]
fn infinite_loop_times_out_and_host_keeps_serving() {
    let host = memory_host();
    deploy_healthy(&host);
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
    for call in 0..2 {
        let started = Instant::now();
        let err = host
            .route("looper", &Message::new("x"), &ctx())
            .wait()
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            err,
            PluginError::Timeout {
                plugin: "looper".into(),
                version: info.version.clone(),
                limit: Duration::from_millis(30)
            }
        );
        assert!(
            elapsed >= Duration::from_millis(30),
            "stopped early: {elapsed:?}"
        );
        // The second call runs in the penalty lane at the lowest CPU priority: its deadline is
        // CPU time, so on a busy test machine it may take longer in wall-clock time.
        let bound = Duration::from_secs(if call == 0 { 2 } else { 20 });
        assert!(
            elapsed < bound,
            "deadline not enforced promptly: {elapsed:?}"
        );
        assert_healthy(&host);
    }
    let stats = host.stats("looper").unwrap();
    assert_eq!((stats.calls, stats.timeouts, stats.lane_calls), (2, 2, 1));
    assert!(err_text_names_plugin(&host));
}

fn err_text_names_plugin(host: &PluginHost) -> bool {
    let err = host
        .route("looper", &Message::new("x"), &ctx())
        .wait()
        .unwrap_err();
    err.to_string().contains("plugin looper version ") && err.kind() == "timeout"
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let host = memory_host();
    deploy_healthy(&host);
    let limits = PluginLimits {
        max_memory_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
        ..PluginLimits::default()
    };
    host.deploy(
        "bomb",
        &rust_plugin_bytes("test_memory_bomb"),
        with_limits(limits),
    )
    .unwrap();
    for _ in 0..2 {
        match host.route("bomb", &Message::new("x"), &ctx()).wait() {
            Err(PluginError::MemoryLimit { plugin, limit, .. }) => {
                assert_eq!(plugin, "bomb");
                assert_eq!(limit, 16 << 20);
            }
            other => panic!("expected memory limit, got {other:?}"),
        }
        assert_healthy(&host);
    }
    assert_eq!(host.stats("bomb").unwrap().memory_limits, 2);
}

#[test]
fn trap_is_reported_and_the_same_plugin_serves_again() {
    let host = memory_host();
    deploy_healthy(&host);
    let info = host
        .deploy(
            "trapper",
            &rust_plugin_bytes("test_trapper"),
            Default::default(),
        )
        .unwrap();
    assert_eq!(
        queues(
            &host
                .route("trapper", &Message::new("fine"), &ctx())
                .wait()
                .unwrap()
        ),
        ["ok"]
    );
    let instances_before = host.stats("trapper").unwrap().instantiations;
    match host.route("trapper", &Message::new("trap"), &ctx()).wait() {
        Err(PluginError::Trap {
            plugin,
            version,
            cause,
        }) => {
            assert_eq!(plugin, "trapper");
            assert_eq!(version, info.version);
            assert!(
                cause.contains("unreachable") || cause.contains("wasm trap"),
                "{cause}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    // The poisoned instance was dropped: the next call gets a fresh one and succeeds.
    assert_eq!(
        queues(
            &host
                .route("trapper", &Message::new("fine"), &ctx())
                .wait()
                .unwrap()
        ),
        ["ok"]
    );
    assert_eq!(
        host.stats("trapper").unwrap().instantiations,
        instances_before + 1
    );
    // A reported error is not a trap, and does not cost an instance.
    match host.route("trapper", &Message::new("error"), &ctx()).wait() {
        Err(PluginError::PluginReported { message, .. }) => assert_eq!(message, "asked to fail"),
        other => panic!("expected a reported error, got {other:?}"),
    }
    assert_eq!(
        host.stats("trapper").unwrap().instantiations,
        instances_before + 1
    );
    let stats = host.stats("trapper").unwrap();
    assert_eq!((stats.traps, stats.plugin_errors, stats.ok), (1, 1, 2));
    assert_healthy(&host);
}

#[test]
fn oversized_output_is_rejected() {
    let host = memory_host();
    deploy_healthy(&host);
    let limits = PluginLimits {
        max_output_bytes: 1 << 20,
        timeout: Duration::from_secs(5),
        ..PluginLimits::default()
    };
    let mut opts = with_config(&[("size", "400000"), ("copies", "4")]);
    opts.limits = Some(limits);
    host.deploy("big", &rust_plugin_bytes("test_oversized"), opts)
        .unwrap();
    match host.route("big", &Message::new("x"), &ctx()).wait() {
        Err(PluginError::OutputTooLarge {
            plugin,
            size,
            limit,
            ..
        }) => {
            assert_eq!(plugin, "big");
            assert_eq!(limit, 1 << 20);
            assert!(size >= 1_600_000, "{size}");
        }
        other => panic!("expected output too large, got {other:?}"),
    }
    // Under the limit, the same plugin answers.
    host.deploy("big", &rust_plugin_bytes("test_oversized"), {
        let mut o = with_config(&[("size", "1000"), ("copies", "2")]);
        o.limits = Some(limits);
        o
    })
    .unwrap();
    assert_eq!(
        queues(
            &host
                .route("big", &Message::new("x"), &ctx())
                .wait()
                .unwrap()
        ),
        ["q0", "q1"]
    );
    assert_healthy(&host);
}

#[test]
fn wrong_world_is_refused_at_deploy() {
    let host = memory_host();
    deploy_healthy(&host);
    match host.deploy(
        "wrong",
        &rust_plugin_bytes("test_wrong_world"),
        Default::default(),
    ) {
        Err(PluginError::WrongWorld {
            plugin,
            expected,
            cause,
        }) => {
            assert_eq!(plugin, "wrong");
            assert!(expected.contains("router"), "{expected}");
            assert!(cause.contains("exports"), "{cause}");
        }
        other => panic!("expected wrong world, got {other:?}"),
    }
    // A router deployed as a filter is refused too.
    let opts = switchyard::plugin::DeployOptions {
        kind: Some(switchyard::plugin::PluginKind::Filter),
        ..Default::default()
    };
    assert!(matches!(
        host.deploy("f", &rust_plugin_bytes("header_router"), opts),
        Err(PluginError::WrongWorld { .. })
    ));
    assert!(host.current("wrong").is_none() && host.current("f").is_none());
    assert!(host
        .load_error("wrong")
        .unwrap()
        .contains("does not match world"));
    assert_healthy(&host);
}

#[test]
fn garbage_bytes_are_not_a_wasm_component() {
    let host = memory_host();
    deploy_healthy(&host);
    match host.deploy("junk", b"this is not wasm at all", Default::default()) {
        Err(PluginError::NotAComponent { plugin, cause }) => {
            assert_eq!(plugin, "junk");
            assert!(cause.contains("magic header"), "{cause}");
        }
        other => panic!("expected not a component, got {other:?}"),
    }
    // A core module (not a component) gets the same variant with a hint.
    let core_module = b"\0asm\x01\0\0\0";
    let err = host
        .deploy("core", core_module, Default::default())
        .unwrap_err();
    assert_eq!(err.kind(), "not_a_component");
    assert!(err.to_string().contains("core wasm module"), "{err}");
    // Truncated component: right preamble, broken body.
    let wasm = rust_plugin_bytes("header_router");
    let err = host
        .deploy("torn", &wasm[..wasm.len() / 2], Default::default())
        .unwrap_err();
    assert_eq!(err.kind(), "compile", "{err}");
    assert_healthy(&host);
}

#[test]
fn unknown_plugin_and_bad_names_are_errors() {
    let host = memory_host();
    assert_eq!(
        host.route("nope", &Message::new("x"), &ctx())
            .wait()
            .unwrap_err(),
        PluginError::NotFound {
            plugin: "nope".into()
        }
    );
    for bad in ["", "../x", ".hidden", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(
                host.deploy(bad, b"", Default::default()),
                Err(PluginError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
}
