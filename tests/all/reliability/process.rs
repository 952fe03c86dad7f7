//! A `switchyard serve` process for the reliability tests: started on free ports in a data
//! directory, killed with SIGKILL or stopped, restarted on the same directory, its memory read
//! from `/proc`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::cli::Broker;

/// One running server. Dropping it kills the process.
pub struct Serve {
    pub broker: Broker,
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`
    pub amqp: String,
    /// `http://127.0.0.1:<port>`
    pub http: String,
}

impl Serve {
    /// Start `switchyard serve` with its data in `data_dir` and extra `SWITCHYARD_*` settings.
    /// Panics (with the server's log) if it does not come up: a store that cannot be reopened
    /// after a crash fails the test here.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Serve {
        let work = data_dir.parent().expect("data dir has a parent");
        let data = data_dir.to_str().expect("utf-8 path");
        let mut vars = vec![
            ("SWITCHYARD_DATA_DIR", data),
            ("SWITCHYARD_LOG", "warn,switchyard::server=info"),
        ];
        vars.extend_from_slice(env);
        let broker = Broker::start(work, &["--plugins-dir", "no-plugins-here"], &vars);
        let log = broker.log();
        let amqp = log
            .split("AMQP on amqp://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map(|addr| format!("amqp://guest:guest@{addr}/%2f"))
            .unwrap_or_else(|| panic!("no AMQP address in the log:\n{log}"));
        let http = broker.url.clone();
        Serve { broker, amqp, http }
    }

    /// SIGKILL: no shutdown code runs, unflushed writes are lost as in a power cut of the
    /// process.
    pub fn kill(mut self) {
        self.broker.child.kill().expect("SIGKILL");
        self.broker.child.wait().expect("reap");
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        assert!(
            self.broker.terminate(),
            "unclean exit:\n{}",
            self.broker.log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.broker.child.id()
    }

    /// Resident set size of the server process, bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in /proc/<pid>/status")
            * 1024
    }

    pub async fn connect(&self) -> Connection {
        connect(&self.amqp).await
    }
}

/// A lapin connection, retried briefly (the listener is up once the ready line is logged, but
/// a just-restarted server on a loaded machine may take a moment).
pub async fn connect(uri: &str) -> Connection {
    let mut last = None;
    for _ in 0..50 {
        match Connection::connect(uri, ConnectionProperties::default()).await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {uri}: {last:?}");
}

/// A data directory `data` inside a fresh temp dir (the temp dir is the server's working
/// directory).
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    (work, data)
}

/// An admin API call; (status, JSON body).
pub fn http(
    serve: &Serve,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    crate::admin::request(&serve.http, None, method, path, body)
}

/// PUT raw bytes (a plugin upload); (status, JSON body or text).
pub fn put_bytes(serve: &Serve, path: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .put(&format!("{}{path}", serve.http))
        .send(bytes)
        .expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}
