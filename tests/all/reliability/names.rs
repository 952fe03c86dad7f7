//! Hostile names never reach the file system: queue, exchange and plugin names with path
//! separators, `..`, control characters or huge lengths, over AMQP and the admin API, are
//! refused with a clear error (406 / 400) or, for exchanges, kept only inside
//! `topology.json`; afterwards every file under the data directory has a name the broker
//! chose, nothing was created beside it, and a restart reads the topology back.

use std::path::Path;

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::ExchangeKind;

use super::process::{self, http, put_bytes, Serve};

fn hostile() -> Vec<String> {
    vec![
        "../escape".into(),
        "a/b".into(),
        "/etc/passwd".into(),
        "../..".into(),
        "a\\b".into(),
        "nul\0byte".into(),
        "bell\u{7}and\nnewline".into(),
        "x".repeat(256),
    ]
}

/// Every path under `dir`, relative.
fn walk(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        out.push(path.to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused_and_never_touch_the_file_system() {
    let (work, data) = process::data_dir();
    let serve = Serve::start(&data, &[]);
    let conn = serve.connect().await;
    let mut refused = 0;
    for name in hostile() {
        // AMQP short strings are at most 255 bytes: lapin refuses the longest one itself.
        if name.len() > 255 {
            continue;
        }
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err(&format!("queue {name:?} must be refused"));
        let text = err.to_string();
        assert!(
            text.contains("PRECONDITION_FAILED") || text.contains("406"),
            "queue {name:?}: {text}"
        );
        refused += 1;
        // Exchange names live only in topology.json (JSON-escaped); the broker may accept them.
        let ch = conn.create_channel().await.unwrap();
        let _ = ch
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
    }
    for name in hostile() {
        let encoded = percent(&name);
        let (status, body) = http(
            &serve,
            "PUT",
            &format!("/api/queues/{encoded}"),
            Some(&serde_json::json!({})),
        );
        assert!(
            (400..500).contains(&status),
            "queue {name:?} over HTTP: {status} {body}"
        );
        let (status, body) = put_bytes(
            &serve,
            &format!("/api/plugins/{encoded}"),
            b"\0asm not really",
        );
        assert!(
            (400..500).contains(&status),
            "plugin {name:?}: {status} {body}"
        );
        assert!(status != 413, "{body}");
        refused += 2;
    }
    let _ = conn.close(200, "bye".into()).await;
    // A restart reads the topology (with the odd exchange names) back.
    serve.kill();
    let serve = Serve::start(&data, &[]);
    let conn = serve.connect().await;
    let _ = conn.close(200, "bye".into()).await;
    serve.stop();

    let mut paths = Vec::new();
    walk(&data, &mut paths);
    for p in &paths {
        let name = Path::new(p).file_name().unwrap().to_string_lossy();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && name.len() < 100,
            "a file the broker did not name: {p:?}"
        );
        assert!(!p.contains("escape") && !p.contains("passwd"), "{p:?}");
    }
    let beside: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "data")
        .collect();
    assert!(
        beside.is_empty(),
        "created beside the data directory: {beside:?}"
    );
    eprintln!(
        "names: {refused} hostile queue and plugin names refused over AMQP and HTTP; {} paths \
         under the data directory checked, none named by a client",
        paths.len()
    );
}
