//! The cluster's plugin registry on JetStream, followed by every node's plugin host.
//!
//! Layout (namespace `<ns>`): the bytes of each version in the object store `<ns>_plugins`,
//! named by the version (its SHA-256); what each plugin name serves in the key-value bucket
//! `<ns>_plugin_heads`, one [`PluginHead`] per name, with the last [`HEAD_HISTORY`] kept for
//! rollbacks.
//!
//! Invariants:
//! - A head names only bytes already stored: [`PluginSync::deploy`] stores the bytes, then
//!   writes the head. A follower never sees a version it cannot fetch.
//! - Nothing reaches the cluster that did not load: `deploy` first deploys into the calling
//!   node's own host (compile, world check, warm-up); a version that fails there is refused
//!   and the cluster keeps serving what it served.
//! - Following is idempotent: a head equal to what the local host serves changes nothing, so
//!   the node that deployed, and a node that restarts and replays every head, do no work.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::plugin::{DeployOptions, PluginHost, PluginKind, PluginLimits};
use crate::queue::jetstream::names::{escape_token, unescape_token};
use crate::queue::jetstream::{open_bucket, JetStreamError, JetStreamQueues};

/// Heads kept per plugin name: how far back a rollback can go.
pub const HEAD_HISTORY: i64 = 10;

/// What one plugin name serves across the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginHead {
    /// SHA-256 of the component, lowercase hex (the plugin host's version).
    pub version: String,
    pub kind: PluginKind,
    pub config: std::collections::BTreeMap<String, String>,
    pub limits: PluginLimits,
}

/// The cluster's plugin registry. Cheap to clone.
#[derive(Clone)]
pub struct PluginSync {
    heads: kv::Store,
    objects: ObjectStore,
}

impl std::fmt::Debug for PluginSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSync").finish_non_exhaustive()
    }
}

impl PluginSync {
    /// Opens (or creates) the registry of the namespace `store` works in.
    pub async fn open(store: &JetStreamQueues) -> Result<PluginSync, JetStreamError> {
        let options = store.options();
        let js = store.context();
        let heads = open_bucket(
            js,
            &format!("{}_plugin_heads", options.namespace),
            HEAD_HISTORY,
            options.replicas,
        )
        .await?;
        let bucket = format!("{}_plugins", options.namespace);
        let objects = match js.get_object_store(&bucket).await {
            Ok(objects) => objects,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    description: Some("Switchyard plugin versions".into()),
                    storage: StorageType::File,
                    num_replicas: options.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| JetStreamError::nats(format!("creating object store {bucket}"), e))?,
        };
        Ok(PluginSync { heads, objects })
    }

    /// Deploys `wasm` as `name` on this node, then makes it what every node serves.
    pub async fn deploy(
        &self,
        host: &PluginHost,
        name: &str,
        wasm: Vec<u8>,
        options: DeployOptions,
    ) -> Result<PluginHead, ClusterPluginError> {
        let local = host.clone();
        let (plugin, bytes) = (name.to_owned(), wasm.clone());
        let info = tokio::task::spawn_blocking(move || local.deploy(&plugin, &bytes, options))
            .await
            .expect("a deploy does not panic")
            .map_err(|e| ClusterPluginError::Refused(e.to_string()))?;
        let kind = host
            .current(name)
            .map(|(kind, _)| kind)
            .expect("deployed just now");
        let head = PluginHead {
            version: info.version.clone(),
            kind,
            config: info.config,
            limits: info.limits,
        };
        if self.objects.info(&head.version).await.is_err() {
            self.objects
                .put(head.version.as_str(), &mut wasm.as_slice())
                .await
                .map_err(|e| {
                    JetStreamError::nats(format!("storing plugin version {}", head.version), e)
                })?;
        }
        self.put_head(name, &head).await?;
        Ok(head)
    }

    /// What the registry serves as `name`, if anything.
    pub async fn head(&self, name: &str) -> Result<Option<PluginHead>, ClusterPluginError> {
        let entry = self
            .heads
            .get(escape_token(name))
            .await
            .map_err(|e| JetStreamError::nats(format!("reading plugin {name}"), e))?;
        entry.map(|bytes| decode(&bytes)).transpose()
    }

    /// Makes the head before the current one of `name` current again, on every node.
    pub async fn rollback(&self, name: &str) -> Result<PluginHead, ClusterPluginError> {
        let mut history = self.heads.history(escape_token(name)).await.map_err(|e| {
            JetStreamError::nats(format!("reading the history of plugin {name}"), e)
        })?;
        let mut heads = Vec::new();
        while let Some(entry) = history.next().await {
            let entry = entry.map_err(|e| JetStreamError::nats("reading plugin history", e))?;
            if entry.operation == Operation::Put {
                heads.push(decode(&entry.value)?);
            }
        }
        let current = heads
            .pop()
            .ok_or_else(|| ClusterPluginError::Unknown(name.into()))?;
        let previous = heads
            .into_iter()
            .rev()
            .find(|h| h.version != current.version)
            .ok_or_else(|| ClusterPluginError::NoPrevious(name.into()))?;
        self.put_head(name, &previous).await?;
        Ok(previous)
    }

    async fn put_head(&self, name: &str, head: &PluginHead) -> Result<(), JetStreamError> {
        let json = serde_json::to_vec(head).expect("a head always serializes");
        self.heads
            .put(escape_token(name), json.into())
            .await
            .map_err(|e| JetStreamError::nats(format!("publishing plugin {name}"), e))?;
        Ok(())
    }

    /// Applies every head to `host`, then every change, until the returned task is aborted.
    /// A version that fails to load here is logged and skipped: this node keeps serving what
    /// it served (the plugin host's own rule), and the next head is tried as it comes.
    pub async fn follow(
        &self,
        host: PluginHost,
    ) -> Result<tokio::task::JoinHandle<()>, JetStreamError> {
        let mut watch = self
            .heads
            .watch_with_history(">")
            .await
            .map_err(|e| JetStreamError::nats("watching the plugin registry", e))?;
        let sync = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(entry) = watch.next().await {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        tracing::warn!(error = %e, "plugin registry watch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let Some(name) = unescape_token(&entry.key) else {
                    continue;
                };
                if let Err(e) = sync.apply(&host, &name, &entry).await {
                    tracing::error!(plugin = %name, error = %e, "plugin from the cluster not applied");
                }
            }
        }))
    }

    async fn apply(
        &self,
        host: &PluginHost,
        name: &str,
        entry: &kv::Entry,
    ) -> Result<(), ClusterPluginError> {
        if entry.operation != Operation::Put {
            let host = host.clone();
            let name = name.to_owned();
            return tokio::task::spawn_blocking(move || host.remove(&name))
                .await
                .expect("a removal does not panic")
                .map_err(|e| ClusterPluginError::Refused(e.to_string()));
        }
        let head = decode(&entry.value)?;
        let mut bytes = Vec::new();
        self.objects
            .get(&head.version)
            .await
            .map_err(|e| {
                JetStreamError::nats(format!("fetching plugin version {}", head.version), e)
            })?
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| {
                JetStreamError::nats(format!("reading plugin version {}", head.version), e)
            })?;
        let options = DeployOptions {
            kind: Some(head.kind),
            config: head.config,
            limits: Some(head.limits),
        };
        let (host, name) = (host.clone(), name.to_owned());
        let info = tokio::task::spawn_blocking(move || host.deploy(&name, &bytes, options))
            .await
            .expect("a deploy does not panic")
            .map_err(|e| ClusterPluginError::Refused(e.to_string()))?;
        tracing::info!(plugin = %entry.key, version = %info.version, "plugin version from the cluster serving");
        Ok(())
    }

    /// Stops serving `name` on every node.
    pub async fn remove(&self, name: &str) -> Result<(), JetStreamError> {
        self.heads
            .delete(escape_token(name))
            .await
            .map_err(|e| JetStreamError::nats(format!("removing plugin {name}"), e))
    }
}

fn decode(bytes: &[u8]) -> Result<PluginHead, ClusterPluginError> {
    serde_json::from_slice(bytes).map_err(|e| ClusterPluginError::Corrupt(e.to_string()))
}

/// Why a cluster plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterPluginError {
    #[error("the plugin did not load on this node, so it was not published: {0}")]
    Refused(String),
    #[error("plugin {0:?} is not in the cluster registry")]
    Unknown(String),
    #[error("plugin {0:?} has no earlier version in the cluster registry to roll back to")]
    NoPrevious(String),
    #[error("a plugin head in the cluster registry does not decode: {0}")]
    Corrupt(String),
    #[error(transparent)]
    JetStream(#[from] JetStreamError),
}
