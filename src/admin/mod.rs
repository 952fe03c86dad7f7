//! The HTTP admin API (axum, JSON everywhere): queues, exchanges, bindings, publishing,
//! pull consumption, dead letters, plugins, definitions, metrics and health.
//!
//! It calls the broker and knows no AMQP internals: connections and consumers come from the
//! AMQP layer's read-only [`Registry`]. Routes, by file:
//! - `overview`: `/api/overview`, `/api/connections`, `/api/consumers`, `/healthz`, `/readyz`;
//! - `queues`: `/api/queues[/{name}[/purge]]`; `pull`: `/api/queues/{name}/{get,ack,nack}`;
//! - `exchanges`: `/api/exchanges[/{name}[/publish|/dry-run]]`, `/api/bindings[/unbind]`;
//! - `deadletters`: `/api/dead-letters[/redrive]`;
//! - `plugins`: `/api/plugins[/{name}[/rollback|/stats]]`;
//! - `definitions`: `/api/definitions`; `metrics`: `/metrics` (Prometheus text).
//!
//! Errors are `{"error": "..."}` with a status that fits ([`ApiError`]). A bearer token, when
//! configured, guards everything but the health probes (`auth`). Request bodies are limited
//! (`max_request_bytes`; plugin uploads `max_plugin_bytes`). With a TLS identity the API is
//! served over HTTPS only ([`serve_tls`], `https`).
//!
//! `fuzzing`: the entry point of the `admin_bodies` fuzz target and its regression test.

mod auth;
mod deadletters;
mod definitions;
mod error;
mod exchanges;
#[doc(hidden)]
pub mod fuzzing;
mod https;
mod message_json;
mod metrics;
mod overview;
mod plugins;
mod pull;
mod queues;
mod rates;

pub use error::{ApiError, ApiResult};

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use parking_lot::Mutex;
use tokio::net::TcpListener;

use crate::amqp::Registry;
use crate::broker::Broker;
use crate::cluster::Cluster;
use crate::queue::Consumer;
use crate::tls::Tls;

/// Admin API settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Required bearer token; `None`: no authentication (loopback only, see `Config::validate`).
    pub token: Option<String>,
    pub max_request_bytes: usize,
    pub max_plugin_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            max_request_bytes: 16 << 20,
            max_plugin_bytes: 64 << 20,
        }
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Arc<Broker>,
    amqp: Option<Arc<Registry>>,
    config: AdminConfig,
    started: Instant,
    ready: AtomicBool,
    /// One pull consumer per queue for HTTP get/ack/nack: its unacknowledged deliveries stay
    /// in flight until acked or nacked here (or the broker stops).
    pulls: Mutex<HashMap<String, Consumer>>,
    rates: rates::Rates,
    /// In cluster mode, where plugin deploys, rollbacks and removals go (every node).
    cluster: Option<Cluster>,
}

impl AdminState {
    /// `amqp`: the AMQP listener's registry, if one runs, for connection and consumer lists.
    /// `cluster`: the cluster this node belongs to (plugin changes then reach every node).
    pub fn new(
        broker: Arc<Broker>,
        amqp: Option<Arc<Registry>>,
        config: AdminConfig,
        cluster: Option<Cluster>,
    ) -> Self {
        AdminState {
            inner: Arc::new(Inner {
                broker,
                amqp,
                config,
                started: Instant::now(),
                ready: AtomicBool::new(false),
                pulls: Mutex::default(),
                rates: rates::Rates::default(),
                cluster,
            }),
        }
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// Mark startup finished: `/readyz` answers 200 from now on.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    fn broker(&self) -> &Arc<Broker> {
        &self.inner.broker
    }
}

/// The admin API's routes.
pub fn router(state: AdminState) -> Router {
    let plugin_limit = DefaultBodyLimit::max(state.inner.config.max_plugin_bytes);
    let plugin_upload = Router::new()
        .route(
            "/api/plugins/{name}",
            put(plugins::deploy)
                .get(plugins::show)
                .delete(plugins::remove),
        )
        .layer(plugin_limit);
    Router::new()
        .route("/healthz", get(overview::healthz))
        .route("/readyz", get(overview::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/overview", get(overview::overview))
        .route("/api/connections", get(overview::connections))
        .route("/api/consumers", get(overview::consumers))
        .route("/api/queues", get(queues::list))
        .route(
            "/api/queues/{name}",
            get(queues::show)
                .put(queues::declare)
                .delete(queues::delete),
        )
        .route("/api/queues/{name}/purge", post(queues::purge))
        .route("/api/queues/{name}/get", post(pull::get))
        .route("/api/queues/{name}/ack", post(pull::ack))
        .route("/api/queues/{name}/nack", post(pull::nack))
        .route("/api/exchanges", get(exchanges::list))
        .route(
            "/api/exchanges/{name}",
            get(exchanges::show)
                .put(exchanges::declare)
                .delete(exchanges::delete),
        )
        .route("/api/exchanges/{name}/publish", post(exchanges::publish))
        .route("/api/exchanges/{name}/dry-run", post(exchanges::dry_run))
        .route(
            "/api/bindings",
            get(exchanges::bindings).post(exchanges::bind),
        )
        .route("/api/bindings/unbind", post(exchanges::unbind))
        .route("/api/dead-letters", get(deadletters::list))
        .route("/api/dead-letters/redrive", post(deadletters::redrive))
        .route("/api/plugins", get(plugins::list))
        .route("/api/plugins/{name}/rollback", post(plugins::rollback))
        .route("/api/plugins/{name}/stats", get(plugins::stats))
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .layer(DefaultBodyLimit::max(state.inner.config.max_request_bytes))
        .merge(plugin_upload)
        .fallback(overview::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Serve the admin API on `listener` until `shutdown` completes, then finish the requests in
/// flight. Also samples queue counters for the rates it reports.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, state, shutdown).await
}

/// [`serve`] over HTTPS: only TLS connections are served on `listener` (a plain HTTP request
/// fails its handshake and is closed), so the bearer token never crosses the network in
/// clear.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Tls,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(https::TlsListener::new(listener, tls)?, state, shutdown).await
}

async fn serve_on<L>(
    listener: L,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let sampler = tokio::spawn(rates::sample_forever(state.clone()));
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sampler.abort();
    result
}
