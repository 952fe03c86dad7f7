//! `switchyard serve` and `switchyard config print` as processes.

use std::net::TcpListener;

use super::{bin, run, Broker};

#[test]
fn config_print_shows_defaults_and_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(bin().current_dir(dir.path()).args(["config", "print"]));
    assert!(ok, "{err}");
    assert!(out.contains("data_dir = \"./switchyard-data\""), "{out}");
    assert!(out.contains("amqp_listen = \"127.0.0.1:5673\""), "{out}");
    assert!(out.contains("http_listen = \"127.0.0.1:15673\""), "{out}");
    assert!(out.contains("plugins_dir = \"./plugins\""), "{out}");

    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, "data_dir = \"/file\"\namqp_listen = \"127.0.0.1:1111\"\nhttp_listen = \"127.0.0.1:2222\"\n").unwrap();
    let (ok, out, err) = run(bin()
        .args([
            "config",
            "print",
            "--config",
            file.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:4444",
        ])
        .env("SWITCHYARD_AMQP_LISTEN", "127.0.0.1:3333")
        .env("SWITCHYARD_ADMIN_TOKEN", "hunter2"));
    assert!(ok, "{err}");
    assert!(
        out.contains("data_dir = \"/file\""),
        "file beats default: {out}"
    );
    assert!(
        out.contains("amqp_listen = \"127.0.0.1:3333\""),
        "env beats file: {out}"
    );
    assert!(
        out.contains("http_listen = \"127.0.0.1:4444\""),
        "flag beats env: {out}"
    );
    assert!(
        out.contains("admin_token = \"********\"") && !out.contains("hunter2"),
        "{out}"
    );

    let (ok, _, err) = run(bin()
        .args(["config", "print"])
        .env("SWITCHYARD_AMQP_LISTEN", "nowhere"));
    assert!(!ok);
    assert!(
        err.contains("amqp_listen") && err.contains("environment"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_taken_port_and_an_open_remote_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let (ok, _, err) = run(bin().current_dir(dir.path()).args([
        "serve",
        "--amqp-listen",
        &port,
        "--http-listen",
        "127.0.0.1:0",
    ]));
    assert!(!ok);
    assert!(
        err.contains("--amqp-listen") && err.contains(&port),
        "{err}"
    );

    let (ok, _, err) = run(bin().current_dir(dir.path()).args([
        "serve",
        "--amqp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "0.0.0.0:0",
    ]));
    assert!(!ok);
    assert!(err.contains("admin_token"), "{err}");
}

#[test]
fn sigterm_stops_gracefully_and_logs_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::start(
        dir.path(),
        &["--log-format", "json"],
        &[("SWITCHYARD_LOG", "info,switchyard::broker=debug")],
    );
    let log = b.log();
    assert!(log.contains("plugins directory not found"), "{log}");
    let (ok, _, err) = b.cli(&["queue", "declare", "q"]);
    assert!(ok, "{err}");
    let (ok, _, err) = b.cli(&["publish", "", "q", "--body", "x", "--id", "span-1"]);
    assert!(ok, "{err}");
    assert!(b.terminate(), "exit status after SIGTERM:\n{}", b.log());
    let log = b.log();
    assert!(log.contains("store flushed"), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    // The per-message span: message id and exchange on the span, destinations on the event.
    let routed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "routed")
        .unwrap_or_else(|| panic!("no routed event in:\n{log}"));
    assert_eq!(routed["span"]["message_id"], "span-1", "{routed}");
    assert_eq!(routed["span"]["exchange"], "", "{routed}");
    let destinations = routed["fields"]["destinations"].as_str().unwrap();
    assert!(destinations.contains("\"q\""), "{routed}");
    assert!(
        dir.path().join("switchyard-data").is_dir(),
        "default data dir in the working directory"
    );
}

/// The binary installs jemalloc with a configuration that purges freed memory from a
/// background thread (`src/bin/switchyard/alloc.rs`); without it, or if jemalloc did not read
/// the configuration symbol, no such thread would run.
#[test]
fn serve_runs_jemalloc_with_its_purging_thread() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[], &[("_RJEM_MALLOC_CONF", "")]);
    let tasks = format!("/proc/{}/task", b.child.id());
    let names: Vec<String> = std::fs::read_dir(&tasks)
        .unwrap_or_else(|e| panic!("{tasks}: {e}"))
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("jemalloc_bg_thd")),
        "no jemalloc background thread among {names:?}"
    );
}
