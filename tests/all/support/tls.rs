//! Self-signed certificates made in the test (rcgen), valid for `localhost` and 127.0.0.1.

use std::path::PathBuf;

/// A certificate and its key as PEM files in a temporary directory.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate's PEM, for clients that trust it.
    pub pem: String,
    _dir: tempfile::TempDir,
}

impl TestCert {
    pub fn new() -> TestCert {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let pem = made.cert.pem();
        std::fs::write(&cert, &pem).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        TestCert {
            cert,
            key,
            pem,
            _dir: dir,
        }
    }

    pub fn tls(&self) -> switchyard::tls::Tls {
        switchyard::tls::Tls::load(&self.cert, &self.key).unwrap()
    }
}
