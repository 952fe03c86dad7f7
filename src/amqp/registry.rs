//! A read-only view of who is connected and consuming, for the admin API and metrics.
//!
//! Entries are added by the connection and consume paths and removed when their guard drops, so
//! the view cannot keep a connection or consumer that is gone, whatever path ended it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

/// An open AMQP connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub user: String,
    /// Milliseconds since the Unix epoch.
    pub connected_at_ms: u64,
}

/// An active `basic.consume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerInfo {
    pub connection: u64,
    pub channel: u16,
    pub tag: String,
    pub queue: String,
    pub prefetch: u32,
    pub no_ack: bool,
}

type ConsumerKey = (u64, u16, String);

/// Connections and consumers of one AMQP listener.
#[derive(Debug, Default)]
pub struct Registry {
    connections: Mutex<BTreeMap<u64, ConnectionInfo>>,
    consumers: Mutex<BTreeMap<ConsumerKey, ConsumerInfo>>,
}

/// Removes its entry from the registry when dropped.
#[derive(Debug)]
pub(crate) struct Registered {
    registry: Arc<Registry>,
    key: Key,
}

#[derive(Debug)]
enum Key {
    Connection(u64),
    Consumer(ConsumerKey),
}

impl Registry {
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.connections.lock().values().cloned().collect()
    }

    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        self.consumers.lock().values().cloned().collect()
    }

    pub(crate) fn add_connection(self: &Arc<Self>, info: ConnectionInfo) -> Registered {
        let id = info.id;
        self.connections.lock().insert(id, info);
        Registered {
            registry: self.clone(),
            key: Key::Connection(id),
        }
    }

    pub(crate) fn add_consumer(self: &Arc<Self>, info: ConsumerInfo) -> Registered {
        let key = (info.connection, info.channel, info.tag.clone());
        self.consumers.lock().insert(key.clone(), info);
        Registered {
            registry: self.clone(),
            key: Key::Consumer(key),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        match &self.key {
            Key::Connection(id) => {
                self.registry.connections.lock().remove(id);
            }
            Key::Consumer(key) => {
                self.registry.consumers.lock().remove(key);
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
