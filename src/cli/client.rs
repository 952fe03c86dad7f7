//! A small blocking client for the admin API: JSON in and out, the bearer token, HTTPS with an
//! extra trusted certificate, and the server's `{"error": ...}` turned into a [`CliError`].

use std::path::Path;

use serde_json::Value;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the broker at {url}: {cause} (is `switchyard serve` running? set --url or SWITCHYARD_URL)")]
    Unreachable { url: String, cause: String },
    #[error("cannot verify the TLS certificate of {url}: {cause} (for a self-signed or private-CA certificate, pass it with --cacert or SWITCHYARD_CACERT)")]
    Untrusted { url: String, cause: String },
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {cause}")]
    File { path: String, cause: String },
}

/// Where the broker's admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the admin API at `url`. HTTPS trusts the public web roots (Mozilla's), or
    /// with `cacert` the certificates of that PEM file instead: the broker's self-signed
    /// certificate, or the private CA that signed it.
    pub fn new(
        url: &str,
        token: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<Client, CliError> {
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(path) = cacert {
            config = config.tls_config(trusting(path)?);
        }
        Ok(Client {
            base: url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            agent: config.build().into(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn finish(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, CliError> {
        let mut resp = result.map_err(|e| {
            let (url, cause) = (url.to_owned(), e.to_string());
            if is_tls_failure(&e) {
                CliError::Untrusted { url, cause }
            } else {
                CliError::Unreachable { url, cause }
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| CliError::Unreachable {
                url: url.to_owned(),
                cause: e.to_string(),
            })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            Err(CliError::Api { status, message })
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        let url = self.url(path);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.call())
    }

    pub fn delete(&self, path: &str) -> Result<Value, CliError> {
        let url = self.url(path);
        let mut req = self.agent.delete(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let url = self.url(path);
        let mut req = self.agent.post(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.send_json(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let url = self.url(path);
        let mut req = self.agent.put(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.send_json(body))
    }

    pub fn put_bytes(&self, path: &str, bytes: &[u8]) -> Result<Value, CliError> {
        let url = self.url(path);
        let mut req = self
            .agent
            .put(&url)
            .header("Content-Type", "application/wasm");
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.send(bytes))
    }
}

/// Whether a request failed in the TLS handshake (rustls reports it through an I/O error).
fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>()),
        _ => false,
    }
}

/// TLS that trusts the certificates in the PEM file at `path`, and only those (as curl's
/// `--cacert`).
fn trusting(path: &Path) -> Result<TlsConfig, CliError> {
    let file = |cause: String| CliError::File {
        path: path.display().to_string(),
        cause,
    };
    let pem = std::fs::read(path).map_err(|e| file(format!("cannot read --cacert: {e}")))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| file(format!("not a PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(file(
            "no certificate in this file; --cacert takes the broker's certificate (PEM), not its key"
                .into(),
        ));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

/// Percent-encode a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
