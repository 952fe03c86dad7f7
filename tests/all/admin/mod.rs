//! The HTTP admin API, served by `switchyard::server::run` on port-0 listeners over a real
//! broker in a temporary directory, called with real HTTP requests (ureq).

mod api;
mod fuzz;
mod plugins;
mod serve;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchyard::broker::{Broker, BrokerConfig};
use switchyard::server::{self, Listeners, ServeError, Settings};

/// A running server; stopped (gracefully) when dropped or by [`Server::stop`].
pub struct Server {
    pub url: String,
    pub amqp: SocketAddr,
    pub dir: tempfile::TempDir,
    token: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

/// Broker settings for tests: a 5 s plugin deadline (wall-clock deadlines on a loaded 2-core
/// machine), a small page cache.
pub fn broker_config() -> BrokerConfig {
    let mut c = BrokerConfig::default();
    c.plugins.default_limits.timeout = Duration::from_secs(5);
    c.queues.store.cache_capacity = 8 << 20;
    c
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut Settings)) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), f)
    }

    pub fn start_in(dir: tempfile::TempDir, f: impl FnOnce(&mut Settings)) -> Server {
        let mut settings = Settings::from_config(&switchyard::config::Config::default());
        settings.plugins_dir = None;
        f(&mut settings);
        let token = settings.admin.token.clone();
        let path = dir.path().to_path_buf();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listeners = Listeners {
                    amqp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                    http: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                    tls: None,
                };
                let addrs = (
                    listeners.amqp.local_addr().unwrap(),
                    listeners.http.local_addr().unwrap(),
                );
                let broker = Arc::new(Broker::open(&path, broker_config())?);
                addr_tx.send(addrs).unwrap();
                server::run(listeners, broker, settings, async {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let (amqp, http) = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server started");
        let server = Server {
            url: format!("http://{http}"),
            amqp,
            dir,
            token,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        for _ in 0..600 {
            if self.call("GET", "/readyz", None).0 == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server never became ready");
    }

    /// Stop gracefully and return what `run` returned, keeping the data directory.
    pub fn stop(mut self) -> (Result<(), ServeError>, tempfile::TempDir) {
        let result = self.shutdown();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (result, dir)
    }

    fn shutdown(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().expect("server thread"),
            None => Ok(()),
        }
    }

    /// An HTTP request with the server's token; returns status and JSON (or the text as a
    /// JSON string).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        request(&self.url, self.token.as_deref(), method, path, body)
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", path, Some(&body));
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    }

    pub fn put(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call("PUT", path, Some(&body));
        assert!((200..300).contains(&status), "PUT {path}: {status} {v}");
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub fn request(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let agent = agent();
    let result = match method {
        "GET" | "DELETE" => {
            let mut req = if method == "GET" {
                agent.get(&url)
            } else {
                agent.delete(&url)
            };
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        }
        _ => {
            let mut req = if method == "PUT" {
                agent.put(&url)
            } else {
                agent.post(&url)
            };
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            match body {
                Some(b) => req
                    .header("Content-Type", "application/json")
                    .send(b.to_string()),
                None => req.send_empty(),
            }
        }
    };
    let mut resp = result.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// PUT raw bytes (plugin uploads).
pub fn put_bytes(server: &Server, path: &str, bytes: &[u8]) -> (u16, Value) {
    let url = format!("{}{path}", server.url);
    let mut req = agent().put(&url);
    if let Some(t) = &server.token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send(bytes).expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
