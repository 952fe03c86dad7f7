//! The cluster's exchanges and bindings on JetStream, followed by every node's broker.
//!
//! Layout (namespace `<ns>`): the key-value bucket `<ns>_topology`, one key per exchange
//! (`x.<escaped name>`, the [`Exchange`] as JSON) and per binding (`b.<hash>`, the [`Binding`]
//! as JSON; the hash covers what AMQP treats as a binding's identity: source, target, key and
//! arguments).
//!
//! Invariants:
//! - What reaches the bucket was accepted by the calling node's broker first (an inequivalent
//!   redeclaration or a binding to a missing exchange is refused there, not stored), and is
//!   committed on that node only once the bucket has it (a failed put refuses the change).
//! - Followers apply changes in the bucket's order; a change equal to what a node has changes
//!   nothing, so the node that made it and a restarting node replaying the bucket do no work.
//! - A change a node cannot apply (a binding to a queue that node does not have) is logged and
//!   skipped; the others still apply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use tokio::task::JoinHandle;

use crate::broker::{Broker, BrokerError, TopologyChange, TopologySink};
use crate::queue::jetstream::names::{escape_token, unescape_token};
use crate::queue::jetstream::{open_bucket, JetStreamError};
use crate::queue::Remote;
use crate::routing::{Binding, Exchange, TopologyError};

/// The cluster's topology. Cheap to clone.
#[derive(Clone)]
pub struct TopologySync {
    bucket: kv::Store,
    remote: Remote,
}

impl std::fmt::Debug for TopologySync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologySync").finish_non_exhaustive()
    }
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
    pub async fn open(store: &Remote) -> Result<TopologySync, JetStreamError> {
        let options = store.queues().options();
        let bucket = format!("{}_topology", options.namespace);
        let bucket = open_bucket(store.queues().context(), &bucket, 1, options.replicas).await?;
        Ok(TopologySync {
            bucket,
            remote: store.clone(),
        })
    }

    /// From now on every exchange and binding a client changes through `broker` is published
    /// to the cluster before `broker` commits it (see [`TopologySink`]).
    pub fn attach(&self, broker: &Broker) -> Result<(), BrokerError> {
        broker.set_topology_sink(Arc::new(self.clone()))
    }

    /// Applies the whole topology to `broker`, then every change, until the returned task is
    /// aborted.
    pub async fn follow(&self, broker: Arc<Broker>) -> Result<JoinHandle<()>, JetStreamError> {
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

impl TopologySink for TopologySync {
    /// One round trip to the bucket, on the store's runtime.
    fn publish(&self, change: &TopologyChange) -> Result<(), String> {
        let bucket = self.bucket.clone();
        let (key, value) = match change {
            TopologyChange::DeclareExchange(e) => (exchange_key(&e.name), Some(json(e))),
            TopologyChange::DeleteExchange(name) => (exchange_key(name), None),
            TopologyChange::Bind(b) => (binding_key(b), Some(json(b))),
            TopologyChange::Unbind(b) => (binding_key(b), None),
        };
        self.remote.block(async move {
            let done = match value {
                Some(value) => bucket
                    .put(&key, value.into())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => bucket.delete(&key).await.map_err(|e| e.to_string()),
            };
            done.map_err(|e| format!("publishing {key} to the cluster topology: {e}"))
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("topology always serializes")
}

fn apply(
    broker: &Broker,
    bindings: &mut HashMap<String, Binding>,
    entry: &kv::Entry,
) -> Result<(), BrokerError> {
    let put = entry.operation == Operation::Put;
    let bad = |why: String| BrokerError::Cluster(format!("{}: {why}", entry.key));
    if let Some(escaped) = entry.key.strip_prefix("x.") {
        let name = match escaped {
            "_e" => String::new(),
            other => unescape_token(other).ok_or_else(|| bad("not an exchange key".into()))?,
        };
        if !put {
            return match broker.apply_topology(TopologyChange::DeleteExchange(name)) {
                Ok(()) | Err(BrokerError::Topology(TopologyError::NoSuchExchange(_))) => Ok(()),
                Err(e) => Err(e),
            };
        }
        let exchange: Exchange =
            serde_json::from_slice(&entry.value).map_err(|e| bad(e.to_string()))?;
        match broker.topology().exchange(&name) {
            Some(existing) if *existing == exchange => Ok(()),
            // Redeclared differently elsewhere (deleted, then declared anew): follow it.
            Some(_) => {
                broker.apply_topology(TopologyChange::DeleteExchange(name))?;
                broker.apply_topology(TopologyChange::DeclareExchange(exchange))
            }
            None => broker.apply_topology(TopologyChange::DeclareExchange(exchange)),
        }
    } else if entry.key.starts_with("b.") {
        if !put {
            return match bindings.remove(&entry.key) {
                Some(b) => broker.apply_topology(TopologyChange::Unbind(b)),
                None => Ok(()),
            };
        }
        let binding: Binding =
            serde_json::from_slice(&entry.value).map_err(|e| bad(e.to_string()))?;
        bindings.insert(entry.key.clone(), binding.clone());
        broker.apply_topology(TopologyChange::Bind(binding))
    } else {
        Err(bad("not a topology key".into()))
    }
}
