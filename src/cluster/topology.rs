//! The cluster's exchanges and bindings on JetStream, followed by every node's broker.
//!
//! Layout (namespace `<ns>`): the key-value bucket `<ns>_topology`, one key per exchange
//! (`x.<escaped name>`, the [`Exchange`] as JSON) and per binding (`b.<hash>`, the [`Binding`]
//! as JSON; the hash covers what AMQP treats as a binding's identity: source, target, key and
//! arguments).
//!
//! Invariants:
//! - What reaches the bucket was accepted by the calling node's broker first (an inequivalent
//!   redeclaration or a binding to a missing exchange is refused there, not stored).
//! - Followers apply changes in the bucket's order; a change equal to what a node has changes
//!   nothing, so the node that made it and a restarting node replaying the bucket do no work.
//! - A change a node cannot apply (a binding to a queue that node does not have) is logged and
//!   skipped; the others still apply.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::broker::{Broker, BrokerError};
use crate::queue::jetstream::names::{escape_token, unescape_token};
use crate::queue::jetstream::{open_bucket, JetStreamError, JetStreamQueues};
use crate::routing::{Binding, Exchange};

/// The cluster's topology. Cheap to clone.
#[derive(Clone)]
pub struct TopologySync {
    bucket: kv::Store,
}

impl std::fmt::Debug for TopologySync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologySync").finish_non_exhaustive()
    }
}

/// Why a cluster topology change failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterTopologyError {
    #[error("this node's broker refused the change, so it was not published: {0}")]
    Refused(#[from] BrokerError),
    #[error(transparent)]
    JetStream(#[from] JetStreamError),
}

fn exchange_key(name: &str) -> String {
    // The default exchange's name is empty; `_e` cannot come out of `escape_token`.
    match name {
        "" => "x._e".into(),
        name => format!("x.{}", escape_token(name)),
    }
}

fn binding_key(b: &Binding) -> String {
    let identity = serde_json::to_vec(&(&b.source, &b.target, &b.routing_key, &b.arguments))
        .expect("a binding always serializes");
    format!("b.{}", hex::encode(&Sha256::digest(identity)[..16]))
}

impl TopologySync {
    /// Opens (or creates) the topology bucket of the namespace `store` works in.
    pub async fn open(store: &JetStreamQueues) -> Result<TopologySync, JetStreamError> {
        let options = store.options();
        let bucket = format!("{}_topology", options.namespace);
        let bucket = open_bucket(store.context(), &bucket, 1, options.replicas).await?;
        Ok(TopologySync { bucket })
    }

    /// Declares `exchange` on this node, then on every node.
    pub async fn declare_exchange(
        &self,
        broker: &Broker,
        exchange: Exchange,
    ) -> Result<(), ClusterTopologyError> {
        broker.declare_exchange(exchange.clone())?;
        self.put(&exchange_key(&exchange.name), &exchange).await
    }

    /// Deletes `name` (and the bindings from and to it) on this node, then on every node.
    pub async fn delete_exchange(
        &self,
        broker: &Broker,
        name: &str,
        if_unused: bool,
    ) -> Result<(), ClusterTopologyError> {
        broker.delete_exchange(name, if_unused)?;
        self.delete(&exchange_key(name)).await
    }

    /// Binds on this node, then on every node.
    pub async fn bind(
        &self,
        broker: &Broker,
        binding: Binding,
    ) -> Result<(), ClusterTopologyError> {
        broker.bind(binding.clone())?;
        self.put(&binding_key(&binding), &binding).await
    }

    /// Unbinds on this node, then on every node.
    pub async fn unbind(
        &self,
        broker: &Broker,
        binding: &Binding,
    ) -> Result<(), ClusterTopologyError> {
        broker.unbind(binding)?;
        self.delete(&binding_key(binding)).await
    }

    async fn put<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), ClusterTopologyError> {
        let json = serde_json::to_vec(value).expect("topology always serializes");
        self.bucket
            .put(key, json.into())
            .await
            .map_err(|e| JetStreamError::nats(format!("publishing {key}"), e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), ClusterTopologyError> {
        self.bucket
            .delete(key)
            .await
            .map_err(|e| JetStreamError::nats(format!("deleting {key}"), e))?;
        Ok(())
    }

    /// Applies the whole topology to `broker`, then every change, until the returned task is
    /// aborted.
    pub async fn follow(
        &self,
        broker: std::sync::Arc<Broker>,
    ) -> Result<tokio::task::JoinHandle<()>, JetStreamError> {
        let mut watch = self
            .bucket
            .watch_with_history(">")
            .await
            .map_err(|e| JetStreamError::nats("watching the topology", e))?;
        Ok(tokio::spawn(async move {
            // What each binding key stood for: a deletion carries no value.
            let mut bindings: HashMap<String, Binding> = HashMap::new();
            while let Some(entry) = watch.next().await {
                match entry {
                    Ok(entry) => {
                        if let Err(e) = apply(&broker, &mut bindings, &entry) {
                            tracing::warn!(key = %entry.key, error = %e, "topology change from the cluster not applied here");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "topology watch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }))
    }
}

fn apply(
    broker: &Broker,
    bindings: &mut HashMap<String, Binding>,
    entry: &kv::Entry,
) -> Result<(), String> {
    let put = entry.operation == Operation::Put;
    if let Some(escaped) = entry.key.strip_prefix("x.") {
        let name = match escaped {
            "_e" => String::new(),
            other => unescape_token(other).ok_or("not an exchange key")?,
        };
        if !put {
            return match broker.delete_exchange(&name, false) {
                Ok(())
                | Err(BrokerError::Topology(crate::routing::TopologyError::NoSuchExchange(_))) => {
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
        }
        let exchange: Exchange = serde_json::from_slice(&entry.value).map_err(|e| e.to_string())?;
        let topology = broker.topology();
        match topology.exchange(&name) {
            Some(existing) if *existing == exchange => Ok(()),
            // Redeclared differently elsewhere (deleted, then declared anew): follow it.
            Some(_) => {
                broker
                    .delete_exchange(&name, false)
                    .map_err(|e| e.to_string())?;
                broker
                    .declare_exchange(exchange)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            None => broker
                .declare_exchange(exchange)
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    } else if entry.key.starts_with("b.") {
        if !put {
            return match bindings.remove(&entry.key) {
                Some(b) => broker.unbind(&b).map_err(|e| e.to_string()),
                None => Ok(()),
            };
        }
        let binding: Binding = serde_json::from_slice(&entry.value).map_err(|e| e.to_string())?;
        bindings.insert(entry.key.clone(), binding.clone());
        broker.bind(binding).map_err(|e| e.to_string())
    } else {
        Err("not a topology key".into())
    }
}
