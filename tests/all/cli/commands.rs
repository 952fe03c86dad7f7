//! CLI commands against a running `switchyard serve`: tables by default, JSON with `--json`.

use serde_json::Value;

use super::Broker;
use crate::support::plugins::rust_plugin;

fn ok(b: &Broker, args: &[&str]) -> String {
    let (success, out, err) = b.cli(args);
    assert!(success, "switchyard {}: {err}\n{out}", args.join(" "));
    out
}

#[test]
fn publish_consume_queue_exchange_and_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[], &[]);
    ok(&b, &["queue", "declare", "jobs", "--max-deliveries", "3"]);
    ok(&b, &["exchange", "declare", "work", "--type", "direct"]);
    ok(&b, &["exchange", "bind", "work", "jobs", "--key", "j"]);
    let out = ok(
        &b,
        &[
            "publish", "work", "j", "--body", "hello", "-H", "n=3", "--id", "m-1",
        ],
    );
    assert_eq!(out, "published m-1 → jobs\n");
    let table = ok(&b, &["queue", "list"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("QUEUE")
            && header.contains("DEAD-LETTERED")
            && header.contains("OLDEST_MS"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("jobs")).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{table}");

    let json: Value = serde_json::from_str(&ok(&b, &["queue", "list", "--json"])).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "jobs" && q["messages"] == 1));

    let out = ok(&b, &["consume", "jobs"]);
    assert!(out.contains("m-1") && out.contains("hello"), "{out}");
    assert!(ok(&b, &["consume", "jobs"]).contains("queue jobs is empty"));

    let dry = ok(&b, &["publish", "work", "j", "--body", "x", "--dry-run"]);
    assert!(dry.contains("QUEUE") && dry.contains("jobs"), "{dry}");

    let defs: Value = serde_json::from_str(&ok(&b, &["definitions", "export"])).unwrap();
    assert_eq!(defs["bindings"][0]["destination"], "jobs");

    let file = dir.path().join("defs.json");
    let out = ok(&b, &["definitions", "export", "-o", file.to_str().unwrap()]);
    assert!(out.starts_with("definitions written to"), "{out}");
    let applied: Value =
        serde_json::from_str(&ok(&b, &["definitions", "import", file.to_str().unwrap()])).unwrap();
    assert_eq!(applied["applied"]["bindings"], 1, "{applied}");

    ok(&b, &["publish", "work", "j", "--body", "again"]);
    let purged: Value = serde_json::from_str(&ok(&b, &["queue", "purge", "jobs"])).unwrap();
    assert_eq!(purged["purged"], 1);
    ok(&b, &["exchange", "unbind", "work", "jobs", "--key", "j"]);
    assert_eq!(
        ok(&b, &["exchange", "bindings"]).lines().count(),
        1,
        "header only"
    );
    ok(&b, &["queue", "delete", "jobs"]);

    let (success, _, err) = b.cli(&["queue", "show", "nope"]);
    assert!(!success);
    assert!(err.contains("404") && err.contains("nope"), "{err}");
}

/// Deploys the Rust header router as `tenants` (header `tenant`, `acme` → queue `t.acme`), with
/// `extra` arguments; the CLI's success, stdout and stderr.
fn deploy_tenants(b: &Broker, extra: &[&str]) -> (bool, String, String) {
    let wasm = rust_plugin("header_router");
    let mut args = vec![
        "plugin",
        "deploy",
        "tenants",
        wasm.to_str().unwrap(),
        "--config",
        "header=tenant",
        "--config",
        "route.acme=t.acme",
    ];
    args.extend_from_slice(extra);
    b.cli(&args)
}

#[test]
fn a_plugin_deployed_with_its_verdict_cache_lists_its_hits() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[], &[]);
    let (success, _, err) = deploy_tenants(&b, &["--config", "switchyard.verdict-cache=on"]);
    assert!(success, "{err}");
    ok(&b, &["queue", "declare", "t.acme"]);
    let declare = [
        "exchange", "declare", "in", "--type", "x-wasm", "--plugin", "tenants",
    ];
    ok(&b, &declare);
    for id in ["c-1", "c-2", "c-3"] {
        let publish = [
            "publish",
            "in",
            "--body",
            "b",
            "-H",
            "tenant=acme",
            "--id",
            id,
        ];
        assert!(ok(&b, &publish).contains("t.acme"));
    }
    let stats: Value = serde_json::from_str(&ok(&b, &["plugin", "stats", "tenants"])).unwrap();
    assert_eq!(stats["calls"]["calls"], 1, "{stats}");
    assert_eq!(stats["verdict_cache"]["hits"], 2, "{stats}");
    let list = ok(&b, &["plugin", "list"]);
    let header = list.lines().next().unwrap_or_default();
    let row = list.lines().find(|l| l.starts_with("tenants")).unwrap();
    let at = header.find("CACHE HITS").expect("a CACHE HITS column");
    assert_eq!(row[at..].split_whitespace().next(), Some("2"), "{list}");
}

#[test]
fn plugin_deploy_stats_and_dlq_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[], &[]);
    let (success, out, err) = deploy_tenants(&b, &[]);
    assert!(success, "{err}");
    assert!(
        out.starts_with("plugin tenants (router) now at version "),
        "{out}"
    );
    assert!(
        err.contains("uploading") && err.contains("done"),
        "progress line: {err}"
    );
    ok(
        &b,
        &[
            "exchange", "declare", "in", "--type", "x-wasm", "--plugin", "tenants",
        ],
    );
    // No queue t.acme yet: the message is dead-lettered.
    let out = ok(
        &b,
        &[
            "publish",
            "in",
            "--body",
            "b",
            "-H",
            "tenant=acme",
            "--id",
            "d-1",
        ],
    );
    assert!(out.contains("switchyard.dead-letter"), "{out}");
    let list = ok(&b, &["dlq", "list"]);
    assert!(list.contains("d-1") && list.contains("t.acme"), "{list}");

    ok(&b, &["queue", "declare", "t.acme"]);
    let (success, out, err) = b.cli(&["dlq", "redrive"]);
    assert!(success, "{err}");
    assert!(out.starts_with("redriven 1 messages"), "{out}");
    assert!(err.contains("redriven 1"), "progress line: {err}");
    assert!(ok(&b, &["consume", "t.acme"]).contains("d-1"));

    let plugins = ok(&b, &["plugin", "list"]);
    assert!(
        plugins
            .lines()
            .any(|l| l.starts_with("tenants") && l.contains("router")),
        "{plugins}"
    );
    let stats: Value = serde_json::from_str(&ok(&b, &["plugin", "stats", "tenants"])).unwrap();
    assert_eq!(stats["calls"]["calls"], 2, "{stats}");
    let versions = ok(&b, &["plugin", "versions", "tenants"]);
    assert_eq!(versions.lines().count(), 2, "{versions}");
    let (success, _, err) = b.cli(&["plugin", "rollback", "tenants"]);
    assert!(!success);
    assert!(
        err.contains("409") && err.contains("no previous version"),
        "{err}"
    );
    ok(&b, &["plugin", "remove", "tenants"]);
    assert_eq!(ok(&b, &["plugin", "list", "--json"]).trim(), "[]");
}
