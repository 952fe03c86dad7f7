//! The admin API over HTTPS (`tls_cert`/`tls_key` given): curl trusting the certificate made
//! in the test gets `/api/overview`; plain HTTP on that port gets nothing; shutdown stays
//! graceful.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use switchyard::broker::Broker;
use switchyard::config::Config;
use switchyard::server::{self, Listeners, ServeError, Settings, TlsListeners};

use super::broker_config;
use crate::support::tls::TestCert;

/// `curl` with `args`; (exit success, stdout, stderr).
fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs (scripts/test.sh installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn https_admin_api_with_the_test_certificate_and_no_plain_http() {
    let cert = TestCert::new();
    let identity = cert.tls();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut settings = Settings::from_config(&Config::default());
    settings.plugins_dir = None;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || -> Result<(), ServeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
            let listeners = Listeners {
                amqp: bind().await.unwrap(),
                http: bind().await.unwrap(),
                tls: Some(TlsListeners {
                    identity,
                    amqps: bind().await.unwrap(),
                }),
            };
            addr_tx.send(listeners.http.local_addr().unwrap()).unwrap();
            let broker = Arc::new(Broker::open(&path, broker_config())?);
            server::run(listeners, broker, settings, async {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let http = addr_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let cacert = cert.cert.to_str().unwrap();
    let https = format!("https://127.0.0.1:{}", http.port());
    let ready = format!("{https}/readyz");
    let mut up = false;
    for _ in 0..200 {
        if curl(&["--fail", "--cacert", cacert, &ready]).0 {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "the HTTPS admin API never became ready");

    let (ok, body, err) = curl(&[
        "--fail",
        "--cacert",
        cacert,
        &format!("{https}/api/overview"),
    ]);
    assert!(ok, "{err}");
    let overview: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(overview.is_object(), "{body}");

    // The same name, but by its other SAN: the certificate is checked, not just any TLS.
    let (ok, _, err) = curl(&[
        "--fail",
        "--cacert",
        cacert,
        &format!("https://localhost:{}/api/overview", http.port()),
        "--resolve",
        &format!("localhost:{}:127.0.0.1", http.port()),
    ]);
    assert!(ok, "{err}");
    // Untrusted without the test's CA.
    let (ok, _, _) = curl(&["--fail", &format!("{https}/api/overview")]);
    assert!(
        !ok,
        "a client that does not trust the certificate must fail"
    );
    // Plain HTTP on the HTTPS port: no HTTP answer.
    let (ok, body, _) = curl(&[&format!("http://127.0.0.1:{}/api/overview", http.port())]);
    assert!(!ok && body.is_empty(), "plain HTTP must fail, got {body:?}");
    // Still serving after the failed handshakes.
    let (ok, _, err) = curl(&["--fail", "--cacert", cacert, &format!("{https}/api/queues")]);
    assert!(ok, "{err}");

    let _ = stop_tx.send(());
    thread
        .join()
        .unwrap()
        .expect("graceful shutdown with the HTTPS listener");
}
