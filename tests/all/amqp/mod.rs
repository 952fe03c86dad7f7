//! The AMQP front end: raw frames, real clients (lapin, pika) and RabbitMQ as the oracle.
//! Every server binds port 0.

mod access;
mod blocked;
mod clients;
mod differential;
mod expiry;
mod fuzz;
mod limits;
mod pika;
mod policies;
mod raw;
mod raw_limits;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use switchyard::amqp::ServerConfig;
use switchyard::broker::{Broker, BrokerConfig};
use switchyard::queue::QueuesOptions;
use switchyard::store::{Durability, StoreConfig};
use tokio::sync::oneshot;

/// A broker in a temp dir with an AMQP listener on an ephemeral port.
pub struct Server {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Server {
    pub async fn start() -> Server {
        Server::with(ServerConfig::default()).await
    }

    pub async fn with(config: ServerConfig) -> Server {
        Server::in_dir(tempfile::tempdir().unwrap(), config).await
    }

    /// Stop the listener, wait until every connection has let go of the broker, close it,
    /// and start again on the same data directory (a restart).
    pub async fn restart(self) -> Server {
        let Server {
            broker,
            _dir,
            _stop,
            ..
        } = self;
        drop(_stop);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&broker) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the broker is still in use 10 s after the listener stopped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(broker);
        Server::in_dir(_dir, ServerConfig::default()).await
    }

    async fn in_dir(dir: tempfile::TempDir, config: ServerConfig) -> Server {
        let cfg = BrokerConfig {
            queues: QueuesOptions {
                store: StoreConfig {
                    durability: Durability::Relaxed,
                    cache_capacity: 8 << 20,
                    ..StoreConfig::default()
                },
                ..QueuesOptions::default()
            },
            ..BrokerConfig::default()
        };
        let broker = Arc::new(Broker::open(dir.path(), cfg).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(switchyard::amqp::run(
            listener,
            broker.clone(),
            config,
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            broker,
            _dir: dir,
            _stop: stop,
        }
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
}
