//! Starts a Switchyard broker for one repetition: a child process of the release binary (so its
//! CPU, memory and disk are its own) or, in the smoke run, the library's server in this process.
//! Each start gets a fresh data directory, free ports and the topology from a definitions file:
//! every queue at the chosen durability, `x-wasm` exchanges `w1` (Rust header-router, default
//! route `w1`: a plugin call per message), `w2` and `w4` (Rust json-router).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::json;

use super::amqp::all_queues;
use super::readyz::{free_port, ready};

/// The plugin components the topology deploys.
#[derive(Debug, Clone)]
pub struct Plugins {
    pub header_router: PathBuf,
    pub json_router: PathBuf,
}

#[derive(Debug)]
enum Running {
    Child(Child),
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

/// A running Switchyard; stopped (and its data directory removed) on drop.
#[derive(Debug)]
pub struct Switchyard {
    dir: tempfile::TempDir,
    amqp: SocketAddr,
    running: Running,
}

/// The definitions document of the benchmark topology.
fn definitions(durability: &str, plugins: &Plugins) -> serde_json::Value {
    let queues: Vec<_> = all_queues()
        .into_iter()
        .map(|q| json!({"name": q, "durability": durability}))
        .collect();
    let wasm = |name: &str, plugin: &str| json!({"name": name, "type": "x-wasm", "plugin": plugin});
    json!({
        "plugins": [
            {"name": "w1router", "file": plugins.header_router, "config": {"default": "w1"}},
            // W2: no order reaches the threshold, so each goes to orders.r<k> and analytics.
            {"name": "w2router", "file": plugins.json_router, "config": {"threshold": "1e15"}},
            {"name": "w4router", "file": plugins.json_router, "config": {"threshold": "1000"}},
        ],
        "queues": queues,
        "exchanges": [wasm("w1", "w1router"), wasm("w2", "w2router"), wasm("w4", "w4router")],
    })
}

impl Switchyard {
    /// Starts `binary serve`, or the server in this process when `binary` is `None`.
    pub fn start(
        binary: Option<&Path>,
        durability: &str,
        plugins: &Plugins,
    ) -> anyhow::Result<Switchyard> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-compare")
            .tempdir()?;
        let defs = dir.path().join("definitions.json");
        std::fs::write(&defs, definitions(durability, plugins).to_string())?;
        let data = dir.path().join("data");
        let no_plugins = dir.path().join("no-plugins");
        let (amqp, http, running) = match binary {
            Some(binary) => {
                let (amqp, http) = (free_port()?, free_port()?);
                let log = std::fs::File::create(dir.path().join("switchyard.log"))?;
                let child = Command::new(binary)
                    .arg("serve")
                    .arg("--data-dir")
                    .arg(&data)
                    .arg("--plugins-dir")
                    .arg(&no_plugins)
                    .args(["--amqp-listen", &amqp.to_string()])
                    .args(["--http-listen", &http.to_string()])
                    .arg("--definitions")
                    .arg(&defs)
                    .env("SWITCHYARD_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", binary.display()))?;
                (amqp, http, Running::Child(child))
            }
            None => in_process(&data, &no_plugins, &defs)?,
        };
        let mut me = Switchyard { dir, amqp, running };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(http) {
            if let Running::Child(child) = &mut me.running {
                if let Some(status) = child.try_wait()? {
                    bail!("switchyard exited at start ({status}):\n{}", me.log_tail());
                }
            }
            if Instant::now() > deadline {
                bail!("switchyard not ready within 60 s:\n{}", me.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("switchyard.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.amqp)
    }

    /// The broker's process (this one when it runs in process).
    pub fn pid(&self) -> u32 {
        match &self.running {
            Running::Child(child) => child.id(),
            Running::InProcess { .. } => std::process::id(),
        }
    }

    pub fn is_child(&self) -> bool {
        matches!(self.running, Running::Child(_))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Switchyard {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// The server of `switchyard serve`, on its own runtime and thread in this process.
fn in_process(
    data: &Path,
    no_plugins: &Path,
    defs: &Path,
) -> anyhow::Result<(SocketAddr, SocketAddr, Running)> {
    use switchyard::config::Config;
    use switchyard::server::{self, Listeners, Settings};
    let config = Config {
        data_dir: data.to_path_buf(),
        plugins_dir: no_plugins.to_path_buf(),
        amqp_listen: "127.0.0.1:0".parse()?,
        http_listen: "127.0.0.1:0".parse()?,
        definitions: Some(defs.to_path_buf()),
        ..Config::default()
    };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let result = runtime.block_on(async {
            let listeners = Listeners::bind(&config).await?;
            let _ = addr_tx.send(Ok((
                listeners.amqp.local_addr()?,
                listeners.http.local_addr()?,
            )));
            let broker = std::sync::Arc::new(switchyard::broker::Broker::open(
                &config.data_dir,
                config.broker_config(),
            )?);
            server::run(listeners, broker, Settings::from_config(&config), stopped).await?;
            anyhow::Ok(())
        });
        if let Err(e) = result {
            let _ = addr_tx.send(Err(e));
        }
    });
    let (amqp, http) = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .context("in-process server did not bind")??;
    let running = Running::InProcess {
        stop: Some(stop),
        thread: Some(thread),
    };
    Ok((amqp, http, running))
}
