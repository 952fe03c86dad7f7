//! `switchyard serve` as a library: bind the listeners, apply definitions, deploy and watch the
//! plugin directory, serve AMQP and the admin API, and shut down gracefully.
//!
//! [`run`] takes bound listeners (the mini-redis shape), so tests bind port 0 and read the
//! addresses back; the binary binds the configured addresses with [`Listeners::bind`], whose
//! errors name the setting to change.
//!
//! With `tls_cert` and `tls_key`, the certificate is loaded once, before anything is bound (a
//! bad file fails startup with a [`TlsError`] that says what to fix); AMQP over TLS is served
//! on its own address beside plain AMQP, and the admin API switches to HTTPS on the same
//! address (no plain HTTP beside it, so the token is never sent in clear).
//!
//! Shutdown order: `/readyz` turns 503; the listeners stop accepting; the admin API finishes
//! the requests in flight (bounded by `shutdown_timeout`); the store is flushed. AMQP
//! connections already open keep their own tasks until the process exits; every publish they
//! had confirmed is already durable.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::{self, AdminConfig, AdminState};
use crate::amqp::{self, ServerConfig, Shared};
use crate::broker::{Broker, BrokerError};
use crate::cluster::Cluster;
use crate::config::{Config, ConfigError};
use crate::definitions::{apply_users, Definitions, DefinitionsError};
use crate::queue::QueueError;
use crate::tls::{Tls, TlsError};

/// How often the plugin directory is polled for changes.
pub const PLUGIN_POLL: Duration = Duration::from_secs(1);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen for {what} on {addr}: {cause}; choose another address with {flag} \
         (or {env}, or `{key}` in the config file)"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
        env: &'static str,
        key: &'static str,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("applying definitions: {0}")]
    Definitions(#[from] DefinitionsError),
    #[error("plugins directory {dir}: {cause}")]
    PluginsDir { dir: String, cause: std::io::Error },
    #[error("admin API: {0}")]
    Http(std::io::Error),
    #[error("flushing the store at shutdown: {0}")]
    Flush(#[from] QueueError),
    #[error("startup task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("joining the cluster: {0}")]
    Cluster(#[from] crate::cluster::JoinError),
    #[error("connecting to the cluster's store: {0}")]
    Store(#[from] crate::queue::jetstream::JetStreamError),
    #[error("publishing the definitions' users to the cluster: {0}")]
    ClusterUsers(#[from] crate::cluster::ClusterUsersError),
}

/// The bound sockets.
#[derive(Debug)]
pub struct Listeners {
    pub amqp: TcpListener,
    /// Plain HTTP, or HTTPS when `tls` is set.
    pub http: TcpListener,
    pub tls: Option<TlsListeners>,
}

/// What TLS adds: the identity (also used for HTTPS) and the amqps socket.
#[derive(Debug)]
pub struct TlsListeners {
    pub identity: Tls,
    pub amqps: TcpListener,
}

impl Listeners {
    /// Load the TLS identity, if configured, then bind the configured addresses. The error
    /// names the flag, variable and key to change.
    pub async fn bind(config: &Config) -> Result<Listeners, ServeError> {
        let identity = match config.tls_files() {
            Some((cert, key)) => Some(Tls::load(cert, key)?),
            None => None,
        };
        let amqp = TcpListener::bind(config.amqp_listen)
            .await
            .map_err(|cause| ServeError::Bind {
                what: "AMQP",
                addr: config.amqp_listen,
                flag: "--amqp-listen",
                env: "SWITCHYARD_AMQP_LISTEN",
                key: "amqp_listen",
                cause,
            })?;
        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(|cause| ServeError::Bind {
                what: "the HTTP admin API",
                addr: config.http_listen,
                flag: "--http-listen",
                env: "SWITCHYARD_HTTP_LISTEN",
                key: "http_listen",
                cause,
            })?;
        let tls = match (identity, config.amqps_addr()) {
            (Some(identity), Some(addr)) => {
                let amqps = TcpListener::bind(addr)
                    .await
                    .map_err(|cause| ServeError::Bind {
                        what: "AMQP over TLS",
                        addr,
                        flag: "--amqps-listen",
                        env: "SWITCHYARD_AMQPS_LISTEN",
                        key: "amqps_listen",
                        cause,
                    })?;
                Some(TlsListeners { identity, amqps })
            }
            _ => None,
        };
        Ok(Listeners { amqp, http, tls })
    }
}

/// What [`run`] needs besides the listeners and the broker.
#[derive(Debug, Clone)]
pub struct Settings {
    pub amqp: ServerConfig,
    pub admin: AdminConfig,
    /// Deployed at start and watched; `None` or a missing directory: no hot reload.
    pub plugins_dir: Option<PathBuf>,
    pub definitions: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    /// In cluster mode (queues on JetStream), the cluster the broker's store belongs to:
    /// the node follows its topology and plugins, and publishes its own changes there.
    pub cluster: Option<Cluster>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            amqp: config.amqp_config(),
            admin: AdminConfig {
                token: config.admin_token.clone(),
                max_request_bytes: config.max_request_bytes,
                max_plugin_bytes: config.max_plugin_bytes,
            },
            plugins_dir: Some(config.plugins_dir.clone()),
            definitions: config.definitions.clone(),
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
            cluster: None,
        }
    }
}

/// Apply the definitions file: topology and plugins into the broker, users into `amqp` (and,
/// in cluster mode, into the cluster's user table when the file lists users).
async fn apply_definitions(
    broker: &Arc<Broker>,
    path: PathBuf,
    amqp: &mut ServerConfig,
    cluster: Option<&Cluster>,
) -> Result<(), ServeError> {
    let defs = Definitions::from_file(&path)?;
    apply_users(&defs.users, &defs.permissions, &mut amqp.users)?;
    if let Some(cluster) = cluster.filter(|_| !defs.users.is_empty()) {
        cluster
            .users
            .publish(&defs.users, &defs.permissions)
            .await?;
    }
    let base = path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let b = broker.clone();
    tokio::task::spawn_blocking(move || defs.apply(&b, &base)).await??;
    tracing::info!(file = %path.display(), "definitions applied");
    Ok(())
}

/// Deploy every plugin in `dir` and watch it. A missing directory is not an error.
async fn start_plugins(
    broker: &Arc<Broker>,
    dir: Option<PathBuf>,
) -> Result<Option<crate::plugin::DirWatcher>, ServeError> {
    let Some(dir) = dir else { return Ok(None) };
    if !dir.is_dir() {
        tracing::info!(
            dir = %dir.display(),
            "plugins directory not found: hot reload is off (create it, or set --plugins-dir)"
        );
        return Ok(None);
    }
    let host = broker.plugins().clone();
    let scan_dir = dir.clone();
    let results = tokio::task::spawn_blocking(move || host.scan_dir(&scan_dir)).await?;
    for (name, result) in results {
        match result {
            Ok(version) => tracing::info!(plugin = %name, %version, "plugin deployed"),
            Err(e) => tracing::warn!(plugin = %name, error = %e, "plugin not loaded"),
        }
    }
    let watcher = broker
        .plugins()
        .watch_dir(&dir, PLUGIN_POLL)
        .map_err(|cause| ServeError::PluginsDir {
            dir: dir.display().to_string(),
            cause,
        })?;
    tracing::info!(dir = %dir.display(), "watching the plugins directory for hot reload");
    Ok(Some(watcher))
}

/// Cluster mode: the plugins in `dir` that the cluster's registry does not have yet are
/// deployed to every node (a fresh cluster starts with the example plugins); one the registry
/// has is left alone, so a node restarting with an older directory never undoes a deploy.
/// Later changes go through the admin API (`switchyard plugin deploy`), not the directory.
async fn seed_cluster_plugins(cluster: &Cluster, broker: &Arc<Broker>, dir: Option<PathBuf>) {
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return;
    };
    let found = match crate::plugin::dir_plugins(&dir) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "plugins directory not read");
            return;
        }
    };
    for (name, path, config) in found {
        match cluster.plugins.head(&name).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(plugin = %name, error = %e, "cluster registry not readable");
                continue;
            }
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(plugin = %name, error = %e, "plugin file not read");
                continue;
            }
        };
        let options = crate::plugin::DeployOptions {
            config,
            ..Default::default()
        };
        match cluster
            .plugins
            .deploy(broker.plugins(), &name, bytes, options)
            .await
        {
            Ok(head) => {
                tracing::info!(plugin = %name, version = %head.version, "plugin deployed to the cluster")
            }
            Err(e) => tracing::warn!(plugin = %name, error = %e, "plugin not deployed"),
        }
    }
}

/// Serve until `shutdown` completes, then stop gracefully (see the module docs).
pub async fn run(
    listeners: Listeners,
    broker: Arc<Broker>,
    mut settings: Settings,
    shutdown: impl Future,
) -> Result<(), ServeError> {
    let amqp_addr = listeners.amqp.local_addr().ok();
    let http_addr = listeners.http.local_addr().ok();
    let amqps_addr = listeners
        .tls
        .as_ref()
        .and_then(|t| t.amqps.local_addr().ok());
    // Cluster mode: topology and plugins first, so definitions and clients see the cluster's.
    let mut followers = Vec::new();
    if let Some(cluster) = &settings.cluster {
        followers = Box::pin(cluster.join(&broker)).await?;
        let dir = settings.plugins_dir.clone();
        Box::pin(seed_cluster_plugins(cluster, &broker, dir)).await;
    }
    let built_in_users = settings.amqp.users.clone();
    if let Some(path) = settings.definitions.clone() {
        let (amqp, cluster) = (&mut settings.amqp, settings.cluster.as_ref());
        Box::pin(apply_definitions(&broker, path, amqp, cluster)).await?;
    }
    // In cluster mode the registry, not the directory, says what every node serves.
    let _watcher = match settings.cluster {
        Some(_) => None,
        None => start_plugins(&broker, settings.plugins_dir.clone()).await?,
    };

    let shared = Arc::new(Shared::new(broker.clone(), settings.amqp.clone()));
    if let Some(cluster) = &settings.cluster {
        let listener = shared.clone();
        let follow = cluster
            .users
            .follow(built_in_users, move |u| listener.set_users(u));
        followers.push(Box::pin(follow).await?);
    }
    let state = AdminState::new(
        broker.clone(),
        Some(shared.registry.clone()),
        settings.admin.clone(),
        settings.cluster.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut amqp_listeners = vec![amqp::Listener::plain(listeners.amqp)];
    let https = match listeners.tls {
        Some(TlsListeners { identity, amqps }) => {
            amqp_listeners.push(amqp::Listener::tls(amqps, identity.clone()));
            Some(identity)
        }
        None => None,
    };
    let http_scheme = if https.is_some() { "https" } else { "http" };
    let amqp_task = tokio::spawn(amqp::run_listeners(amqp_listeners, shared, stopped()));
    let http_task = match https {
        Some(identity) => tokio::spawn(admin::serve_tls(
            listeners.http,
            identity,
            state.clone(),
            stopped(),
        )),
        None => tokio::spawn(admin::serve(listeners.http, state.clone(), stopped())),
    };
    state.set_ready(true);
    if let (Some(a), Some(h)) = (amqp_addr, http_addr) {
        let amqps = amqps_addr
            .map(|s| format!("AMQP over TLS on amqps://{s}/ ; "))
            .unwrap_or_default();
        tracing::info!(
            "AMQP on amqp://{a}/ ; {amqps}HTTP admin API on {http_scheme}://{h}/ ; ready"
        );
    }

    shutdown.await;
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    state.set_ready(false);
    let _ = stop_tx.send(true);
    let finish = async {
        let _ = amqp_task.await;
        http_task.await
    };
    let http_result = match tokio::time::timeout(settings.shutdown_timeout, finish).await {
        Ok(Ok(r)) => r.map_err(ServeError::Http),
        Ok(Err(join)) => Err(join.into()),
        Err(_) => {
            tracing::warn!("requests still running after the shutdown timeout; stopping anyway");
            Ok(())
        }
    };
    for follower in followers {
        follower.abort();
    }
    broker.queues().flush()?;
    tracing::info!("store flushed; bye");
    http_result
}

/// Completes on Ctrl-C or SIGTERM (Unix).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
