//! The declared queues as this node knows them: a copy of the declarations bucket, kept by a
//! watch, so that routing asks "does this queue exist?" without a network round trip.
//!
//! Invariants:
//! - Filled from the bucket before [`JetStreamQueues::connect`](super::JetStreamQueues::connect)
//!   returns, so a node never starts with an empty view of a populated namespace.
//! - A declaration or deletion made through this node is in the copy when the call returns;
//!   one made on another node arrives through the watch (milliseconds). Authoritative answers
//!   ([`JetStreamQueues::config`](super::JetStreamQueues::config) on a miss, `declare`) read
//!   the bucket itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::{StreamExt, TryStreamExt};
use parking_lot::RwLock;

use super::{names, JetStreamError};
use crate::queue::{QueueConfig, QueueName};

/// This node's copy of the declarations. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(super) struct Catalog {
    queues: Arc<RwLock<BTreeMap<QueueName, QueueConfig>>>,
}

impl Catalog {
    /// Reads every declaration in `bucket`.
    pub async fn load(bucket: &kv::Store) -> Result<Catalog, JetStreamError> {
        let listing = |e: &dyn std::fmt::Display| JetStreamError::nats("listing queues", e);
        let keys: Vec<String> = match bucket.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(|e| listing(&e))?,
            Err(e) => return Err(listing(&e)),
        };
        let catalog = Catalog::default();
        for key in keys {
            let value = bucket.get(&key).await.map_err(|e| listing(&e))?;
            if let Some(value) = value {
                catalog.apply(&key, Some(&value));
            }
        }
        Ok(catalog)
    }

    /// Follows `bucket` until the returned task is aborted.
    pub fn follow(&self, bucket: kv::Store) -> tokio::task::JoinHandle<()> {
        let catalog = self.clone();
        tokio::spawn(async move {
            loop {
                match bucket.watch_with_history(">").await {
                    Ok(mut watch) => {
                        while let Some(entry) = watch.next().await {
                            match entry {
                                Ok(e) => catalog.apply(
                                    &e.key,
                                    (e.operation == Operation::Put).then_some(&e.value[..]),
                                ),
                                Err(e) => {
                                    tracing::warn!(error = %e, "queue declarations watch failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot watch queue declarations"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    /// Applies one bucket entry: a declaration (`Some` value) or a deletion.
    fn apply(&self, key: &str, value: Option<&[u8]>) {
        let Some(name) = names::unescape(key) else {
            return;
        };
        match value.map(serde_json::from_slice::<QueueConfig>) {
            Some(Ok(config)) => self.insert(name, config),
            Some(Err(e)) => tracing::error!(queue = %name, error = %e, "unreadable declaration"),
            None => self.remove(&name),
        }
    }

    pub fn insert(&self, name: QueueName, config: QueueConfig) {
        self.queues.write().insert(name, config);
    }

    pub fn remove(&self, name: &QueueName) {
        self.queues.write().remove(name);
    }

    pub fn get(&self, name: &str) -> Option<QueueConfig> {
        self.queues.read().get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.queues.read().contains_key(name)
    }

    /// Every declared queue, in name order.
    pub fn names(&self) -> Vec<QueueName> {
        self.queues.read().keys().cloned().collect()
    }
}
