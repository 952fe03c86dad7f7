//! The AMQP front end: raw frames, real clients (lapin, pika) and RabbitMQ as the oracle.
//! Every server binds port 0.

mod clients;
mod differential;
mod pika;
mod policies;
mod raw;

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
        let dir = tempfile::tempdir().unwrap();
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
