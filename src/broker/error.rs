//! Errors of the broker layer.

use crate::plugin::PluginError;
use crate::queue::QueueError;
use crate::routing::TopologyError;

/// Why a broker operation failed. A failed publish stored nothing and acknowledged nothing.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no exchange named {0:?}; declare it first")]
    ExchangeNotFound(String),
    #[error("exchange {0:?} is internal: publish to an exchange bound to it instead")]
    InternalExchange(String),
    #[error("publish refused: {0}")]
    Rejected(String),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the cluster did not take the change, so it was not made: {0}")]
    Cluster(String),
    #[error("topology file {path}: {cause}")]
    TopologyFile { path: String, cause: String },
}
