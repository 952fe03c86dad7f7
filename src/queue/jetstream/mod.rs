//! Queues on a NATS JetStream cluster: the store that lets many Switchyard nodes serve one set
//! of queues (the scale-out mode; the sled engine in [`crate::queue`] is the embedded one).
//!
//! # Mapping
//!
//! | Switchyard | JetStream |
//! |---|---|
//! | queue | stream `<ns>_Q_<name>` (work-queue retention, file storage, `replicas`), one subject |
//! | queue declaration ([`QueueConfig`]) | key `<name>` of the key-value bucket `<ns>_queues` |
//! | consumers of a queue, on any node | one durable pull consumer per stream, shared: they compete |
//! | stored message | the [envelope](super::envelope) the sled engine stores, as the payload |
//! | publish confirm | every destination's publish ack (stream persisted, replicated) |
//! | dedup window | the stream's duplicate window; message id `Nats-Msg-Id` |
//! | ack / nack with retry delay | ack / `-NAK` with the [`RetryPolicy`](super::RetryPolicy) delay |
//! | delivery limit, TTL, reject | checked by the node that receives the message: the copy goes to the dead-letter queue's stream (with `x-death`), then the original is acked |
//! | consumer gone (connection or node) | its unacked messages are nacked at once; if the node died, JetStream redelivers them after `ack_wait` |
//!
//! # Invariants
//!
//! - Every declared queue has its stream and consumer: the declaration is written to the bucket
//!   last, so a queue a node can see is a queue it can use.
//! - A publish is confirmed only when every output's stream acknowledged it. The outputs of one
//!   publish are separate stream writes (JetStream 2.9 has no multi-stream transaction); each
//!   carries a message id derived from (message id, copy), so a publisher that retries after a
//!   failure completes the fan-out without duplicates within the dedup window.
//! - A message leaves its stream only by an ack: after it was processed, or after its
//!   dead-letter copy was acknowledged by the dead-letter queue's stream. Dead-letter copies
//!   carry a message id derived from (stream, sequence), so a node that dies between the two
//!   steps leaves no duplicate in the dead-letter queue.
//!
//! # Differences from the embedded store
//!
//! - Every queue deduplicates by message id within its duplicate window (JetStream's default,
//!   2 minutes, unless `dedup_window_ms` says otherwise).
//! - Overflow `drop-head` discards the oldest message without dead-lettering it (JetStream's
//!   discard-old policy); `reject-publish` refuses the publish as the embedded store does.
//! - The messages of a node that dies come back after `ack_wait` (30 s by default), not at once.
//!   Messages handed over from a consumer that closed may arrive with `redelivered` false: NATS
//!   2.9 does not count a delivery whose pull request lost its subscriber.
//! - A delayed publish is held back by one `-NAK` with the remaining delay; JetStream counts
//!   that as a delivery, which Switchyard subtracts from the count it reports.
//! - `expires_ms` (delete an unused queue) is not offered: which node would know it is unused?
//! - Durability is JetStream's: a stream acknowledges once its replicas have the message;
//!   [`Durability`](crate::store::Durability) does not apply.

mod bucket;
mod catalog;
mod consumer;
mod error;
pub(crate) mod names;
mod outbox;
mod pending;
mod publish;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, Context};
use futures::TryStreamExt;
use tokio::task::JoinHandle;

pub(crate) use bucket::open_bucket;
use catalog::Catalog;
pub use consumer::JetStreamConsumer;
pub use error::JetStreamError;
use names::Names;
use outbox::Outbox;
pub use pending::JetStreamPending;

use super::{Clock, ConsumerOptions, Overflow, QueueConfig, QueueError, QueueName, SystemClock};

/// JetStream's default duplicate window, used when a queue sets none.
const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// How to reach and lay out the JetStream store.
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// `nats://host:port`, or several separated by commas (servers of one cluster).
    pub url: String,
    /// Prefix of every stream, subject and bucket: clusters (and tests) sharing one NATS stay
    /// apart. `[A-Za-z0-9_-]+`.
    pub namespace: String,
    /// Copies JetStream keeps of each stream (1 on a single server; 3 on a 3-node cluster).
    pub replicas: usize,
    /// How long a delivery may stay unacknowledged before JetStream gives it to another
    /// consumer: the time a dead node's messages take to come back.
    pub ack_wait: Duration,
    /// Most unacknowledged deliveries of one queue across all nodes.
    pub max_ack_pending: i64,
}

impl JetStreamOptions {
    pub fn new(url: impl Into<String>) -> JetStreamOptions {
        JetStreamOptions {
            url: url.into(),
            namespace: "SWITCHYARD".into(),
            replicas: 1,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
        }
    }
}

/// Occupancy of one queue, as JetStream counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JetStreamStats {
    /// Messages in the stream: waiting, delayed and in flight.
    pub messages: u64,
    /// Delivered to some node and not yet acknowledged.
    pub unacked: u64,
    pub bytes: u64,
}

/// The queues of one namespace on one NATS JetStream. Cheap to clone; every clone shares the
/// connection. Any number of nodes may open the same namespace.
#[derive(Debug, Clone)]
pub struct JetStreamQueues {
    js: Context,
    declarations: kv::Store,
    names: Names,
    options: Arc<JetStreamOptions>,
    clock: Arc<dyn Clock>,
    catalog: Catalog,
    outbox: Outbox,
    _follower: Arc<AbortOnDrop>,
}

/// Stops the catalog's watch when the last clone of the store is dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl JetStreamQueues {
    /// Connects, opens (or creates) the namespace's declarations bucket and reads it. The
    /// tasks that follow the declarations and send publishes run on the calling runtime.
    pub async fn connect(options: JetStreamOptions) -> Result<JetStreamQueues, JetStreamError> {
        let names = Names::new(&options.namespace).map_err(JetStreamError::Unsupported)?;
        let unreachable = |cause: String| JetStreamError::Connect {
            url: options.url.clone(),
            cause,
        };
        // Every server listed is tried in turn, and the client learns the cluster's other
        // servers from the one it reaches: it reconnects to a survivor when its server dies.
        let servers: Vec<&str> = options.url.split(',').map(str::trim).collect();
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            async_nats::ConnectOptions::new()
                .name("switchyard")
                .connect(servers.as_slice()),
        )
        .await
        .map_err(|_| unreachable("no answer within 5 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let js = jetstream::new(client);
        let bucket = names.declarations();
        let declarations = open_bucket(&js, &bucket, 1, options.replicas).await?;
        let catalog = Catalog::load(&declarations).await?;
        let follower = catalog.follow(declarations.clone());
        Ok(JetStreamQueues {
            outbox: Outbox::start(js.clone()),
            js,
            declarations,
            names,
            options: Arc::new(options),
            clock: Arc::new(SystemClock),
            catalog,
            _follower: Arc::new(AbortOnDrop(follower)),
        })
    }

    /// The name of the NATS server this node is connected to right now (it changes when that
    /// server dies and the client moves to another).
    pub fn server(&self) -> String {
        self.js.client().server_info().server_name
    }

    /// `Err` while the connection to NATS is down (the client reconnects on its own; publishes
    /// fail meanwhile, and are not confirmed).
    pub fn health(&self) -> Result<(), JetStreamError> {
        match self.js.client().connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(JetStreamError::Connect {
                url: self.options.url.clone(),
                cause: format!("connection {state}"),
            }),
        }
    }

    /// The JetStream context, for the cluster's other stores (`crate::cluster`).
    pub(crate) fn context(&self) -> &Context {
        &self.js
    }

    pub fn options(&self) -> &JetStreamOptions {
        &self.options
    }

    /// Creates the queue, or checks that it exists with this configuration (as
    /// [`Queues::declare`](super::Queues::declare)): any node may declare, every node sees it.
    pub async fn declare(
        &self,
        name: &QueueName,
        config: QueueConfig,
    ) -> Result<(), JetStreamError> {
        config.validate(name).map_err(QueueError::InvalidConfig)?;
        if config.expires_ms.is_some() {
            return Err(JetStreamError::Unsupported(
                "queue expiry (x-expires): no single node can tell a queue is unused".into(),
            ));
        }
        let stream_name = self.stream(name)?;
        let stream = self
            .js
            .get_or_create_stream(self.stream_config(name, &config)?)
            .await
            .map_err(|e| JetStreamError::nats(format!("creating stream {stream_name}"), e))?;
        stream
            .get_or_create_consumer(
                self.names.consumer(),
                pull::Config {
                    durable_name: Some(self.names.consumer().into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.options.ack_wait,
                    max_ack_pending: self.options.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| JetStreamError::nats(format!("creating consumer of {stream_name}"), e))?;
        let json = serde_json::to_vec(&config).expect("a queue config always serializes");
        let key = names::escape(name).map_err(JetStreamError::Unsupported)?;
        match self.declarations.create(&key, json.into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.catalog.remove(name); // read the bucket, not this node's copy
                if self.config(name).await? != config {
                    return Err(QueueError::ConfigMismatch(name.to_string()).into());
                }
            }
            Err(e) => return Err(JetStreamError::nats(format!("declaring queue {name}"), e)),
        }
        self.catalog.insert(name.clone(), config);
        Ok(())
    }

    fn stream_config(
        &self,
        name: &QueueName,
        config: &QueueConfig,
    ) -> Result<stream::Config, JetStreamError> {
        let dedup = config
            .dedup_window_ms
            .map_or(DEFAULT_DEDUP_WINDOW, Duration::from_millis);
        Ok(stream::Config {
            name: self.stream(name)?,
            subjects: vec![self.subject(name)?],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: self.options.replicas,
            duplicate_window: dedup,
            max_messages: config.max_length.map_or(-1, |n| n as i64),
            discard: match config.overflow {
                Overflow::RejectPublish => DiscardPolicy::New,
                Overflow::DropHead => DiscardPolicy::Old,
            },
            description: Some(format!("Switchyard queue {name}")),
            ..Default::default()
        })
    }

    /// Deletes the queue and its messages. Returns how many messages it held.
    pub async fn delete(&self, name: &QueueName) -> Result<u64, JetStreamError> {
        let held = self.stats(name).await?.messages;
        let key = names::escape(name).map_err(JetStreamError::Unsupported)?;
        // The declaration goes first: from then on no node starts using the queue.
        self.declarations
            .purge(&key)
            .await
            .map_err(|e| JetStreamError::nats(format!("deleting the declaration of {name}"), e))?;
        self.catalog.remove(name);
        let stream = self.stream(name)?;
        self.js
            .delete_stream(&stream)
            .await
            .map_err(|e| JetStreamError::nats(format!("deleting stream {stream}"), e))?;
        Ok(held)
    }

    /// The queue's declared configuration: this node's copy, or the bucket when the copy does
    /// not have it (yet).
    pub async fn config(&self, name: &QueueName) -> Result<QueueConfig, JetStreamError> {
        if let Some(config) = self.catalog.get(name.as_str()) {
            return Ok(config);
        }
        let key = names::escape(name).map_err(JetStreamError::Unsupported)?;
        let entry =
            self.declarations.get(&key).await.map_err(|e| {
                JetStreamError::nats(format!("reading the declaration of {name}"), e)
            })?;
        let bytes = entry.ok_or_else(|| QueueError::NotFound(name.to_string()))?;
        let config: QueueConfig = serde_json::from_slice(&bytes)
            .map_err(|e| QueueError::CorruptRecord(format!("declaration of queue {name}: {e}")))?;
        self.catalog.insert(name.clone(), config.clone());
        Ok(config)
    }

    /// Whether `name` is declared, as this node knows it (no round trip: what routing asks).
    pub fn is_declared(&self, name: &str) -> bool {
        self.catalog.contains(name)
    }

    /// Every declared queue as this node knows it, in name order (no round trip).
    pub fn declared(&self) -> Vec<QueueName> {
        self.catalog.names()
    }

    /// Whether `name` is declared, read from the bucket.
    pub async fn exists(&self, name: &QueueName) -> Result<bool, JetStreamError> {
        match self.config(name).await {
            Ok(_) => Ok(true),
            Err(JetStreamError::Queue(QueueError::NotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every declared queue, in name order.
    pub async fn list(&self) -> Result<Vec<QueueName>, JetStreamError> {
        let listing = |e: &dyn std::fmt::Display| JetStreamError::nats("listing queues", e);
        let keys: Vec<String> = match self.declarations.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(|e| listing(&e))?,
            Err(e) => return Err(listing(&e)),
        };
        let mut queues: Vec<QueueName> = keys.iter().filter_map(|k| names::unescape(k)).collect();
        queues.sort();
        Ok(queues)
    }

    pub async fn stats(&self, name: &QueueName) -> Result<JetStreamStats, JetStreamError> {
        let stream_name = self.stream(name)?;
        let mut stream = match self.js.get_stream(&stream_name).await {
            Ok(s) => s,
            Err(e)
                if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                return Err(QueueError::NotFound(name.to_string()).into())
            }
            Err(e) => {
                return Err(JetStreamError::nats(
                    format!("reading stream {stream_name}"),
                    e,
                ))
            }
        };
        let state = stream
            .info()
            .await
            .map_err(|e| JetStreamError::nats(format!("reading stream {stream_name}"), e))?
            .state
            .clone();
        let unacked = stream
            .consumer_info(self.names.consumer())
            .await
            .map(|c| c.num_ack_pending as u64)
            .unwrap_or(0);
        Ok(JetStreamStats {
            messages: state.messages,
            unacked,
            bytes: state.bytes,
        })
    }

    /// A consumer of `name` on this node. It competes with every other consumer of the queue,
    /// on this node and on others.
    pub async fn consume(
        &self,
        name: &QueueName,
        options: ConsumerOptions,
    ) -> Result<JetStreamConsumer, JetStreamError> {
        let config = self.config(name).await?;
        JetStreamConsumer::open(self.clone(), name.clone(), config, options).await
    }

    /// Deletes every queue of this namespace and every bucket of it (declarations, and the
    /// plugin registry and topology of [`crate::cluster`]): what is left of a retired cluster (and of a
    /// test).
    pub async fn remove_namespace(self) -> Result<(), JetStreamError> {
        for queue in self.list().await? {
            self.delete(&queue).await?;
        }
        let ns = &self.options.namespace;
        for stream in [
            format!("KV_{ns}_queues"),
            format!("KV_{ns}_plugin_heads"),
            format!("KV_{ns}_topology"),
            format!("OBJ_{ns}_plugins"),
        ] {
            match self.js.delete_stream(&stream).await {
                Ok(_) => {}
                Err(e) if e.to_string().contains("not found") => {}
                Err(e) => return Err(JetStreamError::nats(format!("deleting {stream}"), e)),
            }
        }
        Ok(())
    }

    fn stream(&self, name: &QueueName) -> Result<String, JetStreamError> {
        self.names.stream(name).map_err(JetStreamError::Unsupported)
    }

    fn subject(&self, name: &QueueName) -> Result<String, JetStreamError> {
        self.names
            .subject(name)
            .map_err(JetStreamError::Unsupported)
    }
}
