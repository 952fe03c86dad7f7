//! The AMQP listener: accepts connections until shutdown (the mini-redis `run` shape, so tests
//! bind port 0 and pass the listener in).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::connection;
use super::error::AmqpError;

/// A user allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    /// `false`: only from a loopback address (RabbitMQ's rule for `guest`).
    pub remote: bool,
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub users: Vec<User>,
    /// Largest frame we accept and offer in `connection.tune` (bytes, header included).
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat interval we propose, seconds; the client's tune-ok value wins.
    pub heartbeat: u16,
    /// Largest message body accepted from a publisher.
    pub max_body: u64,
    /// Prefetch used when a consumer has no `basic.qos` (AMQP's 0 means unlimited; we bound
    /// it so one consumer can never pull a whole backlog into memory).
    pub default_prefetch: u32,
    /// Publishes per channel whose routing commit may be in flight at once; the reader stops
    /// reading that connection when the limit is reached.
    pub max_inflight_publishes: usize,
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            users: vec![User {
                name: "guest".into(),
                password: "guest".into(),
                remote: false,
            }],
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_body: 64 * 1024 * 1024,
            default_prefetch: 1000,
            max_inflight_publishes: 1024,
            max_connections: 4096,
        }
    }
}

impl ServerConfig {
    /// Check a PLAIN response (`authzid \0 user \0 password`) and return the user name.
    pub fn authenticate(&self, response: &[u8], from: IpAddr) -> Result<String, AmqpError> {
        let mut parts = response.split(|&b| b == 0);
        let (Some(_authzid), Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AmqpError::access_refused("malformed PLAIN response"));
        };
        let user = String::from_utf8_lossy(user).into_owned();
        let ok = self.users.iter().find(|u| u.name == user && u.password.as_bytes() == pass);
        match ok {
            Some(u) if u.remote || from.is_loopback() => Ok(user),
            Some(_) => Err(AmqpError::access_refused(format!(
                "user {user:?} may only connect from localhost"
            ))),
            None => Err(AmqpError::access_refused(
                "Login was refused using authentication mechanism PLAIN",
            )),
        }
    }
}

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
}

/// Accept AMQP connections on `listener` until `shutdown` completes. Connections already open
/// are left to finish on their own tasks.
pub async fn run(listener: TcpListener, config: ServerConfig, shutdown: impl Future) {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared { config });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "amqp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "amqp connection limit reached; refusing");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            connection::serve(stream, peer, shared).await;
            drop(permit);
        });
    }
}
