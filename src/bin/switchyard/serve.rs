//! `switchyard serve` and `switchyard config print`: flags → `Config` → `server::run`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use switchyard::broker::Broker;
use switchyard::cluster::Cluster;
use switchyard::config::{Config, LogFormat};
use switchyard::queue::QueueStore;
use switchyard::server::{self, Listeners, Settings};

/// Settings flags. Each also comes from `SWITCHYARD_<NAME>` or the config file; a flag wins.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// A TOML config file (keys as in `switchyard config print`).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Where the queues live: `embedded`, or `nats://HOST:PORT[,…]` to scale out over a NATS
    /// JetStream shared with other nodes [default: embedded].
    #[arg(long)]
    store: Option<String>,
    /// JetStream namespace: nodes with one namespace form one cluster [default: SWITCHYARD].
    #[arg(long)]
    store_namespace: Option<String>,
    /// Copies JetStream keeps of each stream [default: 1].
    #[arg(long)]
    store_replicas: Option<String>,
    /// The data directory [default: ./switchyard-data].
    #[arg(long)]
    data_dir: Option<String>,
    /// Plugins deployed at start and watched for hot reload [default: ./plugins].
    #[arg(long)]
    plugins_dir: Option<String>,
    /// AMQP listen address [default: 127.0.0.1:5673].
    #[arg(long)]
    amqp_listen: Option<String>,
    /// AMQP over TLS listen address, with --tls-cert and --tls-key [default: 127.0.0.1:5674].
    #[arg(long)]
    amqps_listen: Option<String>,
    /// HTTP admin API listen address; HTTPS with --tls-cert [default: 127.0.0.1:15673].
    #[arg(long)]
    http_listen: Option<String>,
    /// TLS certificate chain (PEM) for amqps and the HTTPS admin API.
    #[arg(long)]
    tls_cert: Option<String>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long)]
    tls_key: Option<String>,
    /// Bearer token for the admin API (required when it listens beyond loopback).
    #[arg(long)]
    admin_token: Option<String>,
    /// A definitions file applied at start.
    #[arg(long)]
    definitions: Option<String>,
    /// text or json.
    #[arg(long)]
    log_format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn resolve(args: &ConfigArgs) -> anyhow::Result<Config> {
    let flags: Vec<(&str, String)> = [
        ("store", &args.store),
        ("store_namespace", &args.store_namespace),
        ("store_replicas", &args.store_replicas),
        ("data_dir", &args.data_dir),
        ("plugins_dir", &args.plugins_dir),
        ("amqp_listen", &args.amqp_listen),
        ("amqps_listen", &args.amqps_listen),
        ("http_listen", &args.http_listen),
        ("tls_cert", &args.tls_cert),
        ("tls_key", &args.tls_key),
        ("admin_token", &args.admin_token),
        ("definitions", &args.definitions),
        ("log_format", &args.log_format),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    Ok(Config::resolve(
        args.config.as_deref(),
        std::env::vars(),
        &flags,
    )?)
}

/// Logs to stderr; `RUST_LOG` (or `SWITCHYARD_LOG`) filters, default `info`.
pub fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = std::env::var("SWITCHYARD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::new(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = resolve(&args.config)?;
    init_logs(config.log_format);
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listeners = Listeners::bind(&config).await?;
        let mut settings = Settings::from_config(&config);
        let broker = match config.jetstream()? {
            None => Broker::open(&config.data_dir, config.broker_config())?,
            Some(options) => {
                let url = options.url.clone();
                let cluster = Cluster::connect(options).await?;
                let store = QueueStore::JetStream(cluster.store.clone());
                settings.cluster = Some(cluster);
                tracing::info!(%url, namespace = %config.store_namespace, "queues on NATS JetStream");
                Broker::with_store(&config.data_dir, config.broker_config(), store)?
            }
        };
        tracing::info!(data_dir = %config.data_dir.display(), "broker opened");
        server::run(listeners, Arc::new(broker), settings, server::signal()).await?;
        Ok(())
    })
}
