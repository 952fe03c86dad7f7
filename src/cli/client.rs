//! A small blocking client for the admin API: JSON in and out, the bearer token, and the
//! server's `{"error": ...}` turned into a [`CliError`].

use serde_json::Value;

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the broker at {url}: {cause} (is `switchyard serve` running? set --url or SWITCHYARD_URL)")]
    Unreachable { url: String, cause: String },
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
    pub fn new(url: &str, token: Option<String>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            base: url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            agent,
        }
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
        let mut resp = result.map_err(|e| CliError::Unreachable {
            url: url.to_owned(),
            cause: e.to_string(),
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
