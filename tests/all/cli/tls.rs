//! `switchyard serve --tls-cert --tls-key` as a process: amqps and HTTPS come up with a
//! certificate made in the test, and the CLI talks to it with `--cacert`; unusable files stop
//! startup with a message that says what to fix.

use std::process::Command;

use super::{bin, run, Broker};
use crate::support::tls::TestCert;

#[test]
fn serve_with_tls_brings_up_amqps_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new();
    let (c, k) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
    let mut b = Broker::start(
        dir.path(),
        &["--tls-cert", c, "--amqps-listen", "127.0.0.1:0"],
        &[("SWITCHYARD_TLS_KEY", k)],
    );
    assert!(b.url.starts_with("https://"), "{}", b.log());
    assert!(b.log().contains("amqps://127.0.0.1:"), "{}", b.log());
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "20"])
        .args(["--cacert", c, &format!("{}/api/overview", b.url)])
        .output()
        .expect("curl runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CLI: trusting the certificate it works; without, it says what to pass.
    let cli = |extra: &[&str]| run(bin().args(["queue", "list", "--url", &b.url]).args(extra));
    let (ok, out, err) = cli(&["--cacert", c]);
    assert!(ok, "{err}");
    assert!(out.contains("QUEUE"), "{out}");
    let (ok, _, err) = cli(&[]);
    assert!(!ok);
    assert!(err.contains("cannot verify the TLS certificate"), "{err}");
    assert!(err.contains("--cacert"), "{err}");
    let (ok, _, err) = cli(&["--cacert", k]);
    assert!(!ok);
    assert!(err.contains("no certificate in this file"), "{err}");
    assert!(b.terminate(), "exit status after SIGTERM:\n{}", b.log());
}

#[test]
fn serve_refuses_unusable_certificates_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (one, other) = (TestCert::new(), TestCert::new());
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let missing = dir.path().join("nope.pem");
    let serve = |cert: &str, key: &str| {
        run(bin().current_dir(dir.path()).args([
            "serve",
            "--amqp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--amqps-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]))
    };
    let cases = [
        (
            serve(&path(&missing), &path(&one.key)),
            vec!["cannot read the TLS certificate", "nope.pem", "--tls-cert"],
        ),
        (
            serve(&path(&one.cert), &path(&missing)),
            vec!["cannot read the TLS private key", "nope.pem", "--tls-key"],
        ),
        (
            serve(&path(&one.cert), &path(&other.key)),
            vec!["does not match the certificate", "tls_key"],
        ),
        (
            serve(&path(&one.cert), &path(&one.cert)),
            vec!["no private key found in", "cert.pem"],
        ),
        (
            serve(&path(&one.key), &path(&one.key)),
            vec!["no certificate found in", "key.pem"],
        ),
    ];
    for ((ok, _, err), wanted) in cases {
        assert!(!ok, "serve must not start: {wanted:?}");
        for w in wanted {
            assert!(err.contains(w), "{w:?} not in: {err}");
        }
    }
    let (ok, _, err) = run(bin().current_dir(dir.path()).args([
        "serve",
        "--amqp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &path(&one.cert),
    ]));
    assert!(!ok);
    assert!(err.contains("set tls_key"), "{err}");
}
