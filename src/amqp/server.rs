//! The AMQP listeners: accept connections, plain or over TLS, until shutdown (the mini-redis
//! `run` shape, so tests bind port 0 and pass the listener in).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::connection;
use super::error::AmqpError;
use crate::auth::{LoginError, User, Users};
use crate::broker::Broker;
use crate::queue::QueueName;
use crate::tls::Tls;

/// Default of [`ServerConfig::max_body`]: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// Default of [`ServerConfig::max_header_count`].
pub const DEFAULT_MAX_HEADER_COUNT: usize = 1024;
/// Default of [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of [`ServerConfig::channel_max`].
pub const DEFAULT_CHANNEL_MAX: u16 = 2047;
/// Refused connections being told why at once; beyond this they are dropped unanswered, so a
/// flood of connections past the limit cannot pile up tasks.
const MAX_REFUSING: usize = 64;
/// How long a refused connection may take to reach `connection.open`.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Who may log in, and their permissions per vhost.
    pub users: Users,
    /// Largest frame we accept and offer in `connection.tune` (bytes, header included).
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat interval we propose, seconds; the client's tune-ok value wins.
    pub heartbeat: u16,
    /// Largest message body accepted from a publisher; a larger one is 406
    /// PRECONDITION_FAILED on its channel.
    pub max_body: u64,
    /// Most header entries (nested tables' and arrays' entries included) a published message
    /// may carry; more is 406 PRECONDITION_FAILED. Their total size is bounded by
    /// `frame_max`, since a content header must fit in one frame (501 FRAME_ERROR if not).
    pub max_header_count: usize,
    /// Prefetch used when a consumer has no `basic.qos` (AMQP's 0 means unlimited; we bound
    /// it so one consumer can never pull a whole backlog into memory).
    pub default_prefetch: u32,
    /// Publishes per channel whose routing commit may be in flight at once; the reader stops
    /// reading that connection when the limit is reached.
    pub max_inflight_publishes: usize,
    /// Open connections at once; one more gets `connection.close` 530 NOT_ALLOWED after its
    /// handshake, so the client can tell why.
    pub max_connections: usize,
    /// How often the listener deletes expired queues (`x-expires`) and re-evaluates the
    /// broker's resource alarm (`connection.blocked`).
    pub housekeeping_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            users: Users::with_guest(),
            frame_max: 131_072,
            channel_max: DEFAULT_CHANNEL_MAX,
            heartbeat: 60,
            max_body: DEFAULT_MAX_MESSAGE_BYTES,
            max_header_count: DEFAULT_MAX_HEADER_COUNT,
            default_prefetch: 1000,
            max_inflight_publishes: 1024,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            housekeeping_interval: Duration::from_millis(100),
        }
    }
}

impl ServerConfig {
    /// Check a PLAIN response (`authzid \0 user \0 password`) from `from`.
    pub fn authenticate(&self, response: &[u8], from: IpAddr) -> Result<&User, AmqpError> {
        plain_login(&self.users, response, from)
    }
}

/// Check a PLAIN response (`authzid \0 user \0 password`) from `from` against `users`.
fn plain_login<'u>(users: &'u Users, response: &[u8], from: IpAddr) -> Result<&'u User, AmqpError> {
    let mut parts = response.split(|&b| b == 0);
    let (Some(_authzid), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AmqpError::access_refused("malformed PLAIN response"));
    };
    users
        .authenticate(&String::from_utf8_lossy(user), pass, from)
        .map_err(|e| match e {
            LoginError::Refused => {
                AmqpError::access_refused("Login was refused using authentication mechanism PLAIN")
            }
            e @ LoginError::LoopbackOnly(_) => AmqpError::access_refused(e.to_string()),
        })
}

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    /// Who may log in now: `config.users` at start; replaced as a whole by [`Shared::set_users`]
    /// (a cluster's users, followed from NATS). Connections already open keep their login.
    users: parking_lot::RwLock<Arc<Users>>,
    pub broker: Arc<Broker>,
    /// Exclusive queues and the connection that owns each.
    pub(crate) exclusive: Mutex<HashMap<QueueName, u64>>,
    /// Queues with an exclusive consumer.
    pub(crate) exclusive_consumers: Mutex<HashSet<QueueName>>,
    /// Queues declared auto-delete (deleted when their last consumer here goes).
    pub(crate) auto_delete: Mutex<HashSet<QueueName>>,
    /// Who is connected and consuming (read by the admin API).
    pub registry: Arc<super::Registry>,
    /// Becomes `true` when the listener stops: connections then close with 320.
    shutdown: tokio::sync::watch::Sender<bool>,
    next_connection: AtomicU64,
    next_consumer_tag: AtomicU64,
}

impl Shared {
    /// Watches the listener's shutdown (see `run_shared`).
    pub(crate) fn on_shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn new(broker: Arc<Broker>, config: ServerConfig) -> Shared {
        Shared {
            users: parking_lot::RwLock::new(Arc::new(config.users.clone())),
            config,
            broker,
            exclusive: Mutex::default(),
            exclusive_consumers: Mutex::default(),
            auto_delete: Mutex::default(),
            registry: Arc::default(),
            shutdown: tokio::sync::watch::channel(false).0,
            next_connection: AtomicU64::new(1),
            next_consumer_tag: AtomicU64::new(1),
        }
    }

    /// Replaces who may log in from now on.
    pub fn set_users(&self, users: Users) {
        *self.users.write() = Arc::new(users);
    }

    /// A PLAIN login against the current users: the user's name and permissions on `vhost`.
    pub(crate) fn login(
        &self,
        response: &[u8],
        from: IpAddr,
        vhost: &str,
    ) -> Result<(String, Option<Arc<crate::auth::Permissions>>), AmqpError> {
        let users = self.users.read().clone();
        let user = plain_login(&users, response, from)?;
        Ok((user.name.clone(), user.permissions(vhost)))
    }

    pub(crate) fn next_connection(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// A server-generated consumer tag.
    pub(crate) fn next_tag_seq(&self, tag: &mut String) {
        let n = self.next_consumer_tag.fetch_add(1, Ordering::Relaxed);
        *tag = format!("amq.ctag-{n}");
    }

    pub(crate) fn forget_queue(&self, queue: &QueueName) {
        self.exclusive.lock().remove(queue);
        self.exclusive_consumers.lock().remove(queue);
        self.auto_delete.lock().remove(queue);
    }

    /// Delete `queue` if it is auto-delete and has no consumer left.
    pub(crate) fn maybe_auto_delete(&self, queue: &QueueName) {
        if !self.auto_delete.lock().contains(queue) {
            return;
        }
        let idle = self
            .broker
            .queues()
            .stats(queue)
            .is_ok_and(|s| s.consumers == 0);
        if idle {
            if let Err(e) = self.broker.delete_queue(queue) {
                tracing::warn!(%queue, error = %e, "auto-delete failed");
            }
            self.forget_queue(queue);
        }
    }

    /// A connection ended: delete the exclusive queues it owned.
    pub(crate) fn release_connection(&self, conn: u64) {
        let owned: Vec<QueueName> = self
            .exclusive
            .lock()
            .iter()
            .filter(|(_, owner)| **owner == conn)
            .map(|(q, _)| q.clone())
            .collect();
        for queue in owned {
            if let Err(e) = self.broker.delete_queue(&queue) {
                tracing::warn!(%queue, error = %e, "deleting an exclusive queue failed");
            }
            self.forget_queue(&queue);
        }
    }
}

/// Accept AMQP connections on `listener` until `shutdown` completes. Connections already open
/// are left to finish on their own tasks.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: impl Future,
) {
    run_shared(listener, Arc::new(Shared::new(broker, config)), shutdown).await;
}

/// [`run`] with state the caller keeps, e.g. to read [`Shared::registry`].
pub async fn run_shared(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future) {
    run_listeners(vec![Listener::plain(listener)], shared, shutdown).await;
}

/// A socket the AMQP front end accepts on: plain AMQP, or AMQP over TLS (amqps).
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    tls: Option<Tls>,
}

impl Listener {
    pub fn plain(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: None }
    }

    /// Every accepted socket first completes a TLS handshake (bounded by the handshake
    /// timeout); one that fails is dropped and logged, and the listener goes on accepting.
    pub fn tls(tcp: TcpListener, tls: Tls) -> Listener {
        Listener {
            tcp,
            tls: Some(tls),
        }
    }
}

/// Admission shared by every listener of one [`Shared`]: `max_connections` bounds plain and
/// TLS connections together, and a TLS connection holds its slot from the TCP accept on, so
/// handshakes in progress count too.
#[derive(Debug)]
struct Gate {
    limit: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
}

/// [`run_shared`] on several listeners at once (plain and TLS), with one connection limit,
/// one housekeeping task and one shutdown for all of them.
pub async fn run_listeners(listeners: Vec<Listener>, shared: Arc<Shared>, shutdown: impl Future) {
    let gate = Arc::new(Gate {
        limit: Arc::new(Semaphore::new(shared.config.max_connections)),
        refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
    });
    let housekeeping = tokio::spawn(housekeeping(Arc::downgrade(&shared)));
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(l, shared.clone(), gate.clone())))
        .collect();
    shutdown.await;
    // The accept loops only accept and spawn: stopping them closes the sockets and leaves
    // every connection (handshakes included) on its own task.
    for a in &accepting {
        a.abort();
    }
    for a in accepting {
        let _ = a.await;
    }
    // Close every connection properly (`connection.close` 320, wait for close-ok) and wait,
    // bounded, until they have let go: their consumers' unacked messages are requeued.
    shared.shutdown.send_replace(true);
    let all = u32::try_from(shared.config.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, gate.limit.acquire_many(all)).await;
    housekeeping.abort();
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>, gate: Arc<Gate>) {
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "amqp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let tls = listener.tls.clone();
        let Ok(permit) = gate.limit.clone().try_acquire_owned() else {
            let max = shared.config.max_connections;
            tracing::warn!(%peer, max, "amqp connection limit reached; refusing");
            // Tell the client why (530 after its handshake) when few are being refused;
            // otherwise just close the socket.
            if let Ok(refusing) = gate.refusing.clone().try_acquire_owned() {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let why = AmqpError::not_allowed(format!(
                        "connection limit ({max}) reached; try again later"
                    ));
                    let refuse = async {
                        match tls {
                            None => connection::serve_refused(stream, peer, shared, why).await,
                            Some(tls) => {
                                if let Some(stream) = tls.accept(stream, peer).await {
                                    connection::serve_refused(stream, peer, shared, why).await;
                                }
                            }
                        }
                    };
                    let _ = tokio::time::timeout(REFUSE_TIMEOUT, refuse).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            match tls {
                None => connection::serve(stream, peer, shared).await,
                Some(tls) => {
                    if let Some(stream) = tls.accept(stream, peer).await {
                        connection::serve_stream(stream, peer, shared).await;
                    }
                }
            }
            drop(permit);
        });
    }
}

/// How long a stopping listener waits for its connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Periodic work on behalf of AMQP clients: delete queues whose `x-expires` passed, and keep
/// the resource alarm current. Runs while the listener (or any connection) lives.
async fn housekeeping(shared: Weak<Shared>) {
    let Some(every) = shared.upgrade().map(|s| s.config.housekeeping_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.broker.delete_expired_queues() {
            Ok(gone) => {
                for queue in gone {
                    tracing::debug!(%queue, "queue expired (x-expires)");
                    shared.forget_queue(&queue);
                }
            }
            Err(e) => tracing::warn!(error = %e, "deleting expired queues failed"),
        }
        shared.broker.check_resources();
    }
}
