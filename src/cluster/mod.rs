//! Scale-out glue: what many Switchyard nodes share through NATS JetStream besides the queues
//! (which are [`crate::queue::jetstream`]).
//!
//! - [`PluginSync`]: the plugin registry of the cluster. A version deployed through one node
//!   is stored once in JetStream (object store for the bytes, key-value bucket for what each
//!   plugin name serves) and every node that follows the registry deploys it into its own
//!   plugin host: a hot swap or a rollback reaches all nodes.
//! - [`TopologySync`]: exchanges and bindings declared through one node are declared on every
//!   node that follows the cluster's topology.
//!
//! - [`UserSync`]: the AMQP users and permissions, followed by every node's listener.
//! - [`Cluster`]: all of them together, as `switchyard serve --store nats://…` uses them.
//!
//! Knows the broker's and the plugin host's public APIs and NATS; the plugin host knows nothing of NATS.

mod plugins;
mod topology;
mod users;

pub use plugins::{ClusterPluginError, PluginHead, PluginSync};
pub use topology::TopologySync;
pub use users::{ClusterUsersError, UserSync};

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::broker::{Broker, BrokerError};
use crate::queue::jetstream::{JetStreamError, JetStreamOptions};
use crate::queue::Remote;

/// What one node shares with the others: the queues, the plugin registry, the topology.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub store: Remote,
    pub plugins: PluginSync,
    pub topology: TopologySync,
    pub users: UserSync,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    JetStream(#[from] JetStreamError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Cluster {
    /// Connects to the namespace (creating its buckets on first use).
    pub async fn connect(options: JetStreamOptions) -> Result<Cluster, JetStreamError> {
        let store = Remote::connect(options).await?;
        let plugins = PluginSync::open(store.queues()).await?;
        let topology = TopologySync::open(&store).await?;
        let users = UserSync::open(store.queues()).await?;
        Ok(Cluster {
            store,
            plugins,
            topology,
            users,
        })
    }

    /// Makes `broker` (opened over [`Cluster::store`]) a node: its topology changes go to the
    /// cluster, and it follows the cluster's topology and plugins until the returned tasks are
    /// aborted.
    pub async fn join(&self, broker: &Arc<Broker>) -> Result<Vec<JoinHandle<()>>, JoinError> {
        self.topology.attach(broker)?;
        Ok(vec![
            self.topology.follow(broker.clone()).await?,
            self.plugins
                .follow(broker.plugins().as_ref().clone())
                .await?,
        ])
    }
}
