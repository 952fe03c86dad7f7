//! The broker's configuration: embedded defaults, a TOML file, `SWITCHYARD_*` environment
//! variables and command-line flags, merged in that order (a later source wins).
//!
//! Every setting has one name used everywhere: `data_dir` in the file, `SWITCHYARD_DATA_DIR` in
//! the environment, `--data-dir` on the command line. Sources are applied as strings through
//! [`Config::set`], so a value means the same whichever source gave it, and an error names the
//! source and the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that configure the broker.
pub const ENV_PREFIX: &str = "SWITCHYARD_";

/// Where amqps listens when TLS is configured and `amqps_listen` is not (RabbitMQ's 5671
/// shifted like our 5673 for plain AMQP, so both brokers can run side by side).
pub const DEFAULT_AMQPS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5674);

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The effective configuration of `switchyard serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the queues live: `embedded` (sled under `data_dir`, one node) or
    /// `nats://HOST:PORT` (several, comma-separated: servers of one cluster), a NATS
    /// JetStream that any number of nodes share.
    pub store: String,
    /// Prefix of every stream and bucket on JetStream: nodes with one namespace are one
    /// cluster. `[A-Za-z0-9_-]+`.
    pub store_namespace: String,
    /// Copies JetStream keeps of every stream and bucket (1 on one server, 3 on a 3-node
    /// cluster).
    pub store_replicas: usize,
    /// How long a JetStream delivery may stay unacknowledged before it goes to another
    /// consumer: how soon the messages a dead node held come back. Set when a queue is first
    /// declared.
    pub store_ack_wait_ms: u64,
    pub data_dir: PathBuf,
    /// Deployed at start and watched for hot reload; a missing directory turns watching off.
    pub plugins_dir: PathBuf,
    pub amqp_listen: SocketAddr,
    /// AMQP over TLS (amqps), beside plain AMQP on `amqp_listen`. Only with `tls_cert` and
    /// `tls_key`; unset then means [`DEFAULT_AMQPS_LISTEN`] (see [`Config::amqps_addr`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqps_listen: Option<SocketAddr>,
    /// Served over HTTPS only when `tls_cert` and `tls_key` are set.
    pub http_listen: SocketAddr,
    /// PEM certificate chain, server certificate first, for amqps and the HTTPS admin API.
    /// Set together with `tls_key`, or neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Bearer token the admin API requires. Mandatory when `http_listen` is not loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// A definitions file (exchanges, queues, bindings, plugins) applied at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definitions: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Largest request body the admin API accepts, except plugin uploads.
    pub max_request_bytes: usize,
    /// Largest plugin component the admin API accepts.
    pub max_plugin_bytes: usize,
    /// How long shutdown waits for in-flight work before closing anyway.
    pub shutdown_timeout_ms: u64,
    /// Default per-call deadline of plugins (a deployment may set its own).
    pub plugin_timeout_ms: u64,
    /// Largest AMQP message body; a larger publish is 406 PRECONDITION_FAILED on its channel.
    pub max_message_bytes: u64,
    /// Most header entries (nested ones included) of an AMQP message; more is 406.
    pub max_header_count: usize,
    /// Most AMQP connections at once; one more is closed with 530 NOT_ALLOWED.
    pub max_connections: usize,
    /// Worker threads of the server's async runtime (default: [`default_worker_threads`]).
    pub worker_threads: usize,
    /// Most channels per AMQP connection, offered in `connection.tune` (1..=65535).
    pub channel_max: u16,
    /// Most queues at once (the broker's dead-letter and quarantine queues count); declaring
    /// one more is 406 over AMQP, 403 over the admin API.
    pub max_queues: usize,
    /// Free bytes under the data directory below which publishers are blocked (resource
    /// alarm, `connection.blocked`); 0 turns the check off.
    pub disk_free_limit: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: "embedded".into(),
            store_namespace: "SWITCHYARD".into(),
            store_replicas: 1,
            store_ack_wait_ms: 30_000,
            data_dir: "./switchyard-data".into(),
            plugins_dir: "./plugins".into(),
            amqp_listen: SocketAddr::from(([127, 0, 0, 1], 5673)),
            amqps_listen: None,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 15673)),
            tls_cert: None,
            tls_key: None,
            admin_token: None,
            definitions: None,
            log_format: LogFormat::Text,
            max_request_bytes: 16 << 20,
            max_plugin_bytes: 64 << 20,
            shutdown_timeout_ms: 10_000,
            plugin_timeout_ms: 100,
            max_message_bytes: crate::amqp::DEFAULT_MAX_MESSAGE_BYTES,
            max_header_count: crate::amqp::DEFAULT_MAX_HEADER_COUNT,
            max_connections: crate::amqp::DEFAULT_MAX_CONNECTIONS,
            worker_threads: default_worker_threads(),
            channel_max: crate::amqp::DEFAULT_CHANNEL_MAX,
            max_queues: crate::queue::DEFAULT_MAX_QUEUES,
            disk_free_limit: crate::broker::DEFAULT_DISK_FREE_LIMIT,
        }
    }
}

/// The default number of runtime worker threads: one per core but one, at least one.
///
/// Why not one per core: a connection is a few tasks (reader, writer, confirmer, a deliverer
/// per consumer) that hand every message to one another, and a work-stealing runtime spreads
/// them over its workers, so each hand-off becomes a cross-thread wake-up (futex, context
/// switch, cold cache). The spare core serves the threads outside the runtime (the store's
/// flusher, plugin fibers and penalty lane) and, on a small machine, clients. Measured on a
/// 2-vCPU VM with the clients on it (`docs/benchmarks.md`, 2026-11-28 "Runtime workers"),
/// one worker instead of two took W1 end to end from 12–15k to 20–31k msg/s and halved the
/// broker's CPU per message.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Env,
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env => f.write_str("environment"),
            Source::Flag => f.write_str("command line"),
        }
    }
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("config file {path}: {cause}")]
    Parse { path: String, cause: String },
    #[error("{origin}: unknown setting {key:?}; known settings: {known}")]
    Unknown {
        origin: Source,
        key: String,
        known: String,
    },
    #[error("{origin}: {key} = {value:?}: {cause}")]
    Invalid {
        origin: Source,
        key: String,
        value: String,
        cause: String,
    },
    #[error(
        "the admin API would listen on {addr} without authentication: set admin_token \
         (--admin-token, SWITCHYARD_ADMIN_TOKEN) or listen on a loopback address \
         (--http-listen 127.0.0.1:15673)"
    )]
    UnauthenticatedRemote { addr: SocketAddr },
    #[error(
        "{given} is set but {missing} is not: TLS needs both the certificate chain (tls_cert, \
         --tls-cert, SWITCHYARD_TLS_CERT) and its private key (tls_key, --tls-key, \
         SWITCHYARD_TLS_KEY); set {missing} or unset {given}"
    )]
    TlsIncomplete {
        given: &'static str,
        missing: &'static str,
    },
    #[error(
        "amqps_listen = {addr} but TLS is not configured: set tls_cert and tls_key \
         (--tls-cert, --tls-key) or unset amqps_listen"
    )]
    AmqpsWithoutTls { addr: SocketAddr },
    #[error(
        "store = {0:?}: expected `embedded` or `nats://HOST:PORT` (several comma-separated for \
         the servers of one NATS cluster), e.g. --store nats://127.0.0.1:4222"
    )]
    Store(String),
}

/// `SWITCHYARD_*` variables that are not settings: the config file's path, the log filter,
/// and the CLI's broker URL.
const NOT_SETTINGS: &[&str] = &["config", "log", "url"];

/// Setting names, in the order `config print` shows them.
pub const KEYS: &[&str] = &[
    "store",
    "store_namespace",
    "store_replicas",
    "store_ack_wait_ms",
    "data_dir",
    "plugins_dir",
    "amqp_listen",
    "amqps_listen",
    "http_listen",
    "tls_cert",
    "tls_key",
    "admin_token",
    "definitions",
    "log_format",
    "max_request_bytes",
    "max_plugin_bytes",
    "shutdown_timeout_ms",
    "plugin_timeout_ms",
    "max_message_bytes",
    "max_header_count",
    "max_connections",
    "worker_threads",
    "channel_max",
    "max_queues",
    "disk_free_limit",
];

impl Config {
    /// Build the effective configuration: defaults, then `file` (if any), then every
    /// `SWITCHYARD_<KEY>` in `env`, then `flags` (setting name, value). `SWITCHYARD_CONFIG`
    /// is the file's own variable and is not a setting.
    pub fn resolve(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if NOT_SETTINGS.contains(&key.as_str()) {
                continue;
            }
            config.set(&key, &value, Source::Env)?;
        }
        for (key, value) in flags {
            config.set(key, value, Source::Flag)?;
        }
        Ok(config)
    }

    /// A TOML file; missing settings keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            cause: e.to_string(),
        })
    }

    /// Set one setting from its string form.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<(), ConfigError> {
        let invalid = |cause: String| ConfigError::Invalid {
            origin: source.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            cause,
        };
        let addr = |v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|e| invalid(format!("{e} (expected HOST:PORT, e.g. 127.0.0.1:5673)")))
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|e| invalid(format!("{e} (expected a whole number)")))
        };
        match key {
            "store" => self.store = value.to_owned(),
            "store_namespace" => self.store_namespace = value.to_owned(),
            "store_replicas" => {
                self.store_replicas = match number(value)? {
                    n @ 1..=5 => n as usize,
                    _ => return Err(invalid("expected 1 to 5 (JetStream's limit)".into())),
                }
            }
            "store_ack_wait_ms" => {
                self.store_ack_wait_ms = match number(value)? {
                    0 => return Err(invalid("must be at least 1".into())),
                    n => n,
                }
            }
            "data_dir" => self.data_dir = value.into(),
            "plugins_dir" => self.plugins_dir = value.into(),
            "amqp_listen" => self.amqp_listen = addr(value)?,
            "amqps_listen" => {
                self.amqps_listen = match value {
                    "" => None,
                    v => Some(addr(v)?),
                }
            }
            "http_listen" => self.http_listen = addr(value)?,
            "tls_cert" => self.tls_cert = Some(value.into()).filter(|_| !value.is_empty()),
            "tls_key" => self.tls_key = Some(value.into()).filter(|_| !value.is_empty()),
            "admin_token" => self.admin_token = Some(value.to_owned()).filter(|t| !t.is_empty()),
            "definitions" => self.definitions = Some(value.into()).filter(|_| !value.is_empty()),
            "log_format" => {
                self.log_format = match value {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(invalid("expected text or json".into())),
                }
            }
            "max_request_bytes" => self.max_request_bytes = number(value)? as usize,
            "max_plugin_bytes" => self.max_plugin_bytes = number(value)? as usize,
            "shutdown_timeout_ms" => self.shutdown_timeout_ms = number(value)?,
            "plugin_timeout_ms" => self.plugin_timeout_ms = number(value)?,
            "max_message_bytes" => self.max_message_bytes = number(value)?,
            "max_header_count" => self.max_header_count = number(value)? as usize,
            "max_connections" => {
                self.max_connections = match number(value)? {
                    0 => return Err(invalid("must be at least 1".into())),
                    n => n as usize,
                }
            }
            "worker_threads" => {
                self.worker_threads = match number(value)? {
                    n @ 1..=1024 => n as usize,
                    _ => return Err(invalid("expected 1 to 1024".into())),
                }
            }
            "channel_max" => {
                self.channel_max = match number(value)? {
                    n @ 1..=65535 => n as u16,
                    _ => return Err(invalid("expected 1 to 65535".into())),
                }
            }
            "max_queues" => self.max_queues = number(value)? as usize,
            "disk_free_limit" => self.disk_free_limit = number(value)?,
            _ => {
                return Err(ConfigError::Unknown {
                    origin: source,
                    key: key.to_owned(),
                    known: KEYS.join(", "),
                })
            }
        }
        Ok(())
    }

    /// The JetStream store's settings, or `None` for the embedded store.
    pub fn jetstream(
        &self,
    ) -> Result<Option<crate::queue::jetstream::JetStreamOptions>, ConfigError> {
        if self.store == "embedded" {
            return Ok(None);
        }
        let urls: Vec<&str> = self.store.split(',').map(str::trim).collect();
        if urls
            .iter()
            .any(|u| !u.starts_with("nats://") || u.len() == "nats://".len())
        {
            return Err(ConfigError::Store(self.store.clone()));
        }
        let mut options = crate::queue::jetstream::JetStreamOptions::new(urls.join(","));
        options.namespace = self.store_namespace.clone();
        options.replicas = self.store_replicas;
        options.ack_wait = std::time::Duration::from_millis(self.store_ack_wait_ms);
        Ok(Some(options))
    }

    /// Refuse settings that are individually valid but unsafe together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.jetstream()?;
        if !self.http_listen.ip().is_loopback() && self.admin_token.is_none() {
            return Err(ConfigError::UnauthenticatedRemote {
                addr: self.http_listen,
            });
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::TlsIncomplete {
                    given: "tls_cert",
                    missing: "tls_key",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::TlsIncomplete {
                    given: "tls_key",
                    missing: "tls_cert",
                })
            }
            (Some(_), Some(_)) => {}
            (None, None) => {
                if let Some(addr) = self.amqps_listen {
                    return Err(ConfigError::AmqpsWithoutTls { addr });
                }
            }
        }
        Ok(())
    }

    /// The certificate chain and key files, when TLS is configured (both set; see
    /// [`Config::validate`]).
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Where amqps listens: `None` without TLS.
    pub fn amqps_addr(&self) -> Option<SocketAddr> {
        self.tls_files()?;
        Some(self.amqps_listen.unwrap_or(DEFAULT_AMQPS_LISTEN))
    }

    /// How to open the broker with these settings.
    pub fn broker_config(&self) -> crate::broker::BrokerConfig {
        let mut c = crate::broker::BrokerConfig::default();
        c.plugins.default_limits.timeout = std::time::Duration::from_millis(self.plugin_timeout_ms);
        c.queues.max_queues = self.max_queues;
        c.disk_free_limit = self.disk_free_limit;
        c
    }

    /// The AMQP listener's settings (users come from the definitions file, at start).
    pub fn amqp_config(&self) -> crate::amqp::ServerConfig {
        crate::amqp::ServerConfig {
            max_body: self.max_message_bytes,
            max_header_count: self.max_header_count,
            max_connections: self.max_connections,
            channel_max: self.channel_max,
            ..crate::amqp::ServerConfig::default()
        }
    }

    /// The configuration as TOML, the token masked (it is a secret; its presence is what
    /// matters when checking a deployment).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.admin_token.is_some() {
            shown.admin_token = Some("********".into());
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
