//! The command-line client of a running broker: `publish`, `consume`, `queue`, `exchange`,
//! `plugin`, `dlq`, `definitions`. It talks to the HTTP admin API (blocking; no async runtime),
//! prints readable tables by default and the API's JSON with `--json`.
//!
//! The flags live here rather than in the binary so the binary stays wiring only; each command
//! is one function in `commands` or `messages`, returning what to print.

mod client;
mod commands;
mod messages;
pub mod table;

pub use client::{encode, CliError, Client};

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where the broker is; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The broker's admin API.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:15673"
    )]
    pub url: String,
    /// Bearer token, when the broker requires one.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// For an HTTPS admin API: trust the certificates in this PEM file (the broker's
    /// self-signed certificate, or its CA) instead of the public roots.
    #[arg(long, global = true, env = "SWITCHYARD_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    pub fn client(&self) -> Result<Client, CliError> {
        Client::new(&self.url, self.token.clone(), self.cacert.as_deref())
    }
}

/// `switchyard publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Exchange (`amq.default` or `""` for the default exchange, which routes by queue name).
    pub exchange: String,
    /// Routing key.
    #[arg(default_value = "")]
    pub routing_key: String,
    /// Body text (default: read stdin).
    #[arg(long, conflicts_with = "file")]
    pub body: Option<String>,
    /// Read the body from a file (`-`: stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Header `name=value` (repeatable). Values that parse as JSON numbers/booleans keep that type.
    #[arg(long = "header", short = 'H', value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Property `name=value`: content_type, correlation_id, reply_to, kind, app_id, priority,
    /// expiration_ms, persistent (repeatable).
    #[arg(long = "property", short = 'P', value_parser = parse_key_value)]
    pub properties: Vec<(String, String)>,
    /// Message id (default: generated).
    #[arg(long)]
    pub id: Option<String>,
    /// Route without storing: print the full decision.
    #[arg(long)]
    pub dry_run: bool,
}

/// `switchyard consume`.
#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    pub queue: String,
    /// How many messages at most.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// Leave the messages unacknowledged (settle later with `queue ack`/`queue nack`).
    #[arg(long)]
    pub no_ack: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// Queues with depth, unacked, dead-lettered, rates and oldest message age.
    List,
    Show {
        name: String,
    },
    /// Declare (idempotent with the same policies).
    Declare {
        name: String,
        #[arg(long)]
        dead_letter: Option<String>,
        #[arg(long)]
        max_deliveries: Option<u32>,
        /// Comma-separated delays (ms) before each redelivery after a nack; the last repeats.
        #[arg(long, value_delimiter = ',')]
        retry_delays_ms: Vec<u64>,
        #[arg(long)]
        message_ttl_ms: Option<u64>,
        #[arg(long)]
        max_length: Option<u64>,
        /// reject-publish or drop-head.
        #[arg(long)]
        overflow: Option<String>,
    },
    Delete {
        name: String,
    },
    /// Remove every ready message.
    Purge {
        name: String,
    },
    /// Settle messages taken with `consume --no-ack`.
    Ack {
        name: String,
        tags: Vec<u64>,
    },
    Nack {
        name: String,
        tags: Vec<u64>,
        /// Dead-letter instead of returning them to the queue.
        #[arg(long)]
        no_requeue: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ExchangeCommand {
    List,
    Show {
        name: String,
    },
    Declare {
        name: String,
        /// direct, fanout, topic, headers or x-wasm.
        #[arg(long = "type", default_value = "direct")]
        kind: String,
        /// Router plugin of an x-wasm exchange.
        #[arg(long)]
        plugin: Option<String>,
        /// Filter/transform plugins run before routing (repeatable, in order).
        #[arg(long)]
        pipeline: Vec<String>,
        /// dead-letter, reject, drop or fallback:<queue>.
        #[arg(long)]
        failure_policy: Option<String>,
        #[arg(long)]
        alternate_exchange: Option<String>,
    },
    Delete {
        name: String,
        #[arg(long)]
        if_unused: bool,
    },
    /// All bindings.
    Bindings,
    /// Bind SOURCE to a queue (or, with --to-exchange, an exchange).
    Bind {
        source: String,
        destination: String,
        #[arg(long, default_value = "")]
        key: String,
        #[arg(long)]
        to_exchange: bool,
        /// A filter plugin the binding applies.
        #[arg(long)]
        filter: Option<String>,
    },
    Unbind {
        source: String,
        destination: String,
        #[arg(long, default_value = "")]
        key: String,
        #[arg(long)]
        to_exchange: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PluginRemoteCommand {
    /// Deployed plugins, their versions and call counts.
    List,
    /// Upload FILE as the new version of NAME.
    Deploy {
        name: String,
        file: PathBuf,
        /// Deployment config `key=value` (repeatable).
        #[arg(long = "config", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
        /// router, filter or transform (default: inferred).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Versions of NAME, oldest first.
    Versions {
        name: String,
    },
    /// Serve the previous version again.
    Rollback {
        name: String,
    },
    Remove {
        name: String,
    },
    /// Calls, errors, traps, timeouts, latency percentiles, verdicts per version.
    Stats {
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DlqCommand {
    /// Dead letters with the reason each died.
    List {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send dead letters back where they came from (through their exchange, so a fixed plugin
    /// decides anew).
    Redrive {
        #[arg(long)]
        queue: Option<String>,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DefinitionsCommand {
    /// Print (or write) the running broker's definitions.
    Export {
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Apply a definitions file to the running broker (plugins must be deployed already).
    Import { file: PathBuf },
}

/// `key=value`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

pub use commands::{definitions, dlq, exchange, plugin, queue};
pub use messages::{consume, publish};
