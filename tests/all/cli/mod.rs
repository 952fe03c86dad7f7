//! The `switchyard` binary: `serve` as a process (flags, environment, config file, signals)
//! and the CLI commands against it.

mod commands;
mod quickstart;
mod serve;
mod tls;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    // The developer's own settings must not leak into the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHYARD_") {
            c.env_remove(k);
        }
    }
    c
}

/// A `switchyard serve` process on free ports, with its stderr collected.
pub struct Broker {
    pub child: Child,
    pub url: String,
    pub log: Arc<Mutex<String>>,
}

impl Broker {
    /// Start `switchyard serve` in `dir` (its working directory) with extra `args`.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Broker {
        let mut cmd = bin();
        cmd.current_dir(dir)
            .args([
                "serve",
                "--amqp-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn switchyard serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let started = Instant::now();
        let url = loop {
            if let Some(url) = find_url(&log.lock().unwrap()) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve exited with {status}:\n{}", log.lock().unwrap());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "serve did not start:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Broker { child, url, log }
    }

    /// Run a CLI command against this broker; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        run(bin().args(args).env("SWITCHYARD_URL", &self.url))
    }

    /// Send SIGTERM and wait for the exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin URL from the "ready" log line.
fn find_url(log: &str) -> Option<String> {
    let at = log.find("HTTP admin API on ")? + "HTTP admin API on ".len();
    let rest = &log[at..];
    let url = rest.split_whitespace().next()?;
    Some(url.trim_end_matches('/').to_owned())
}

pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run switchyard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
