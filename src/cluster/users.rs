//! The cluster's AMQP users and permissions on JetStream, followed by every node's listener.
//!
//! Layout: the key-value bucket `<ns>_users`, one key `table` holding the users (passwords
//! hashed: a clear password never leaves the node that read it) and their permissions, in the
//! definitions document's shapes.
//!
//! Invariants:
//! - The table is replaced as a whole, by a node that starts with a definitions file listing
//!   users: the cluster's users are those of the last such file.
//! - A node applies the table over its own built-in users (`guest`, loopback only), so a table
//!   that does not load leaves the node with what it had, never with nobody.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::auth::Users;
use crate::definitions::{apply_users, DefinitionsError, PermissionSpec, UserSpec};
use crate::queue::jetstream::{open_bucket, JetStreamError, JetStreamQueues};

const KEY: &str = "table";

/// Users and permissions as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    users: Vec<UserSpec>,
    permissions: Vec<PermissionSpec>,
}

/// The cluster's users. Cheap to clone.
#[derive(Clone)]
pub struct UserSync {
    bucket: kv::Store,
}

impl std::fmt::Debug for UserSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSync").finish_non_exhaustive()
    }
}

/// Why the cluster's users could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ClusterUsersError {
    #[error(transparent)]
    Invalid(#[from] DefinitionsError),
    #[error(transparent)]
    JetStream(#[from] JetStreamError),
}

impl UserSync {
    /// Opens (or creates) the users bucket of the namespace `store` works in.
    pub async fn open(store: &JetStreamQueues) -> Result<UserSync, JetStreamError> {
        let options = store.options();
        let bucket = format!("{}_users", options.namespace);
        let bucket = open_bucket(store.context(), &bucket, 1, options.replicas).await?;
        Ok(UserSync { bucket })
    }

    /// Makes `users` and `permissions` the cluster's (passwords hashed first).
    pub async fn publish(
        &self,
        users: &[UserSpec],
        permissions: &[PermissionSpec],
    ) -> Result<(), ClusterUsersError> {
        let table = Table {
            users: users
                .iter()
                .map(UserSpec::hashed)
                .collect::<Result<_, _>>()?,
            permissions: permissions.to_vec(),
        };
        apply_users(&table.users, &table.permissions, &mut Users::default())?;
        let json = serde_json::to_vec(&table).expect("a user table always serializes");
        self.bucket
            .put(KEY, json.into())
            .await
            .map_err(|e| JetStreamError::nats("publishing the cluster's users", e))?;
        Ok(())
    }

    /// Calls `apply` with `base` plus the cluster's users now and after every change, until
    /// the returned task is aborted.
    pub async fn follow(
        &self,
        base: Users,
        apply: impl Fn(Users) + Send + 'static,
    ) -> Result<JoinHandle<()>, JetStreamError> {
        let mut watch = self
            .bucket
            .watch_with_history(KEY)
            .await
            .map_err(|e| JetStreamError::nats("watching the cluster's users", e))?;
        Ok(tokio::spawn(async move {
            while let Some(entry) = watch.next().await {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster users watch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let mut users = base.clone();
                if entry.operation == Operation::Put {
                    let table: Table = match serde_json::from_slice(&entry.value) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %e, "the cluster's user table does not decode");
                            continue;
                        }
                    };
                    if let Err(e) = apply_users(&table.users, &table.permissions, &mut users) {
                        tracing::error!(error = %e, "the cluster's user table not applied");
                        continue;
                    }
                }
                tracing::info!("users from the cluster applied");
                apply(users);
            }
        }))
    }
}
