//! Where a node's topology changes go besides its own file: the cluster's shared topology
//! (`crate::cluster::TopologySync`), so that what one node declares every node routes by.

use crate::routing::{Binding, Exchange};

/// One change to the exchanges and bindings.
#[derive(Debug, Clone, PartialEq)]
pub enum TopologyChange {
    DeclareExchange(Exchange),
    DeleteExchange(String),
    Bind(Binding),
    Unbind(Binding),
}

/// Receives every topology change a client makes through this node, after the node accepted
/// it and before it is committed here: an error refuses the change (the client is told, and
/// nothing changes anywhere). Changes that arrive from the sink's own followers are applied
/// with [`Broker::apply_topology`](super::Broker::apply_topology) and do not come back here.
pub trait TopologySink: Send + Sync + std::fmt::Debug {
    fn publish(&self, change: &TopologyChange) -> Result<(), String>;
}
