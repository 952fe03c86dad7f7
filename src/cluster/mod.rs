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
//! Knows the broker's and the plugin host's public APIs and NATS; the plugin host knows nothing of NATS.

mod plugins;
mod topology;

pub use plugins::{ClusterPluginError, PluginHead, PluginSync};
pub use topology::{ClusterTopologyError, TopologySync};
