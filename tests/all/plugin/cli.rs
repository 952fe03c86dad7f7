//! `switchyard plugin test`, end to end through the built binary.

use std::process::Command;

use serde_json::Value;

use crate::support::plugins::rust_plugin;

fn run(args: &[&str]) -> (bool, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .expect("run switchyard");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        out.status.success(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_test_prints_a_verdict_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("messages.jsonl");
    std::fs::write(
        &input,
        concat!(
            "# comment lines and blank lines are skipped\n",
            r#"{"id":"m1","json":{"id":"o1","region":"eu","amount":2000},"headers":{"tenant":"acme","n":3}}"#, "\n",
            "\n",
            r#"{"id":"m2","body":"not json","context":{"exchange":"orders","routing_key":"x"}}"#, "\n",
            r#"{"id":"m3","body_base64":"eyJyZWdpb24iOiJ1cyJ9"}"#, "\n",
            "this line is not JSON\n",
        ),
    )
    .unwrap();
    let router = rust_plugin("json_router");
    let (ok, lines, stderr) = run(&[
        "plugin",
        "test",
        router.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--config",
        "threshold=1000",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), 4, "{lines:?}");

    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["id"], "m1");
    let dest = &lines[0]["verdict"]["destinations"];
    assert_eq!(lines[0]["verdict"]["type"], "deliver");
    let queues: Vec<&str> = dest
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["orders.eu", "orders.large", "analytics"]);
    let slim = &dest[2]["message"];
    assert_eq!(slim["headers"]["x-slimmed"], true);
    assert_eq!(slim["headers"]["n"], 3);
    let slim_body: Value = serde_json::from_str(slim["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        slim_body,
        serde_json::json!({"id": "o1", "region": "eu", "amount": 2000.0})
    );

    assert_eq!(lines[1]["verdict"]["type"], "dead_letter");
    assert!(lines[1]["verdict"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("body is not JSON"));
    assert_eq!(lines[2]["verdict"]["destinations"][0]["queue"], "orders.us");
    assert_eq!(lines[3]["error"]["kind"], "input");
    assert!(stderr.contains("4 messages, 1 errors"), "{stderr}");
}

#[test]
fn plugin_test_reports_faults_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.jsonl");
    std::fs::write(&input, "{\"body\":\"x\"}\n").unwrap();
    let looper = rust_plugin("test_looper");
    let (ok, lines, _) = run(&[
        "plugin",
        "test",
        looper.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--timeout-ms",
        "20",
    ]);
    assert!(ok);
    assert_eq!(lines[0]["error"]["kind"], "timeout");
    assert!(lines[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("deadline"));

    let filter = rust_plugin("size_filter");
    let (ok, lines, _) = run(&[
        "plugin",
        "test",
        filter.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(
        lines[0]["verdict"],
        serde_json::json!({"type": "filter", "keep": true})
    );

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, "hello").unwrap();
    let (ok, lines, stderr) = run(&[
        "plugin",
        "test",
        garbage.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(lines.is_empty());
    assert!(stderr.contains("not a wasm component"), "{stderr}");

    let (ok, _, stderr) = run(&[
        "plugin",
        "test",
        filter.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--world",
        "router",
    ]);
    assert!(!ok);
    assert!(stderr.contains("does not match world"), "{stderr}");
}
