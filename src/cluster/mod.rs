//! Scale-out glue: what many Switchyard nodes share through NATS JetStream besides the queues
//! (which are [`crate::queue::jetstream`]).
//!
//! - [`PluginSync`]: the plugin registry of the cluster. A version deployed through one node
//!   is stored once in JetStream (object store for the bytes, key-value bucket for what each
//!   plugin name serves) and every node that follows the registry deploys it into its own
//!   plugin host: a hot swap or a rollback reaches all nodes.
//!
//! Knows the plugin host's public API and NATS; the plugin host knows nothing of NATS.

mod plugins;

pub use plugins::{ClusterPluginError, PluginHead, PluginSync};
