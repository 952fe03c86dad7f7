//! The sandbox: a plugin cannot read or write files, list directories, open sockets, or see
//! the host's environment and arguments, because WASI is linked with an empty context (no
//! preopened directories, no socket permissions, no variables). The memory and time limits are
//! shown in `faults.rs` (memory bomb, looper).

use std::io::Write;

use switchyard::message::Message;
use switchyard::plugin::{PluginHost, RouteContext, RouteVerdict};

use super::memory_host;
use crate::support::plugins::rust_plugin_bytes;
use crate::support::wait::Wait;

fn prober() -> PluginHost {
    let host = memory_host();
    host.deploy(
        "prober",
        &rust_plugin_bytes("test_prober"),
        Default::default(),
    )
    .unwrap();
    host
}

/// What the prober reported for one probe.
fn probe(host: &PluginHost, headers: &[(&str, &str)]) -> String {
    let mut msg = Message::new("x");
    for (name, value) in headers {
        msg = msg.with_header(*name, *value);
    }
    match host.route("prober", &msg, &RouteContext::default()).wait() {
        Ok(RouteVerdict::DeadLetter { reason }) => reason,
        other => panic!("the prober answers with a dead-letter reason, got {other:?}"),
    }
}

fn assert_denied(outcome: &str, what: &str) {
    assert!(outcome.starts_with("denied"), "{what}: {outcome}");
}

#[test]
fn files_and_directories_are_out_of_reach() {
    let host = prober();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::File::create(&secret)
        .unwrap()
        .write_all(b"host secret")
        .unwrap();
    let secret = secret.to_str().unwrap();
    for path in [secret, "/etc/passwd", "Cargo.toml", "."] {
        assert_denied(&probe(&host, &[("probe", "file"), ("path", path)]), path);
    }
    for path in ["/", ".", dir.path().to_str().unwrap()] {
        assert_denied(&probe(&host, &[("probe", "dir"), ("path", path)]), path);
    }
    let target = dir.path().join("escaped.txt");
    let outcome = probe(
        &host,
        &[("probe", "write"), ("path", target.to_str().unwrap())],
    );
    assert_denied(&outcome, "write");
    assert!(!target.exists(), "the plugin wrote {}", target.display());
}

#[test]
fn sockets_cannot_be_opened() {
    let host = prober();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let outcome = probe(&host, &[("probe", "connect"), ("addr", &addr)]);
    assert_denied(&outcome, "connect");
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the plugin reached the listener"
    );
}

#[test]
fn the_environment_and_arguments_are_empty() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host has variables to leak"
    );
    let host = prober();
    assert_denied(&probe(&host, &[("probe", "env")]), "env");
    assert_eq!(probe(&host, &[("probe", "args")]), "args: 0");
    // The probes left the plugin healthy: it still answers.
    assert_eq!(
        probe(&host, &[("probe", "nothing")]),
        "unknown probe \"nothing\""
    );
}
