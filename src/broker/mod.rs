//! The broker core: exchanges and plugins in front of the durable queues.
//!
//! A publish is routed ([`Decision`]) and then committed: every output of the decision — copies
//! for several queues, dead-letterings, quarantined copies — goes into the queue store in one
//! atomic batch, and the call returns only once that batch is durable. A crash therefore never
//! leaves a partial fan-out. The broker knows no sockets and no wasmtime types: protocol front
//! ends call it, and plugins are reached through [`PluginHost`]'s plain-Rust API.

mod alarm;
mod batch;
mod breaker;
mod decision;
mod error;
mod outcome;
mod publish;
mod replay;
mod route;
mod topology_file;
mod topology_sink;
mod verdicts;

pub use crate::message::LINEAGE_HEADER;
pub use alarm::{ResourceAlarm, DEFAULT_DISK_FREE_LIMIT};
pub use batch::Publish;
pub use breaker::Breakers;
pub use decision::{Decision, Output, Step};
pub use error::BrokerError;
pub use outcome::Outcome;
pub use publish::{BrokerCounters, Confirmation, Published, Submitted};
pub use route::{SpecialQueues, EXCHANGE_HEADER, MAX_HOPS, REASON_HEADER, ROUTING_KEY_HEADER};
pub use topology_sink::{TopologyChange, TopologySink};
pub use verdicts::{VersionStats, VersionVerdicts};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::plugin::{HostConfig, PluginHost};
use crate::queue::{QueueConfig, QueueName, QueueStore, Queues, QueuesOptions};
use crate::routing::{Binding, BindingTarget, Exchange, Topology};
use publish::refuse_deep;
use route::Router;
use topology_file::TopologyFile;

/// How to open a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub queues: QueuesOptions,
    pub plugins: HostConfig,
    /// Consecutive failures of one plugin version that open its circuit breaker.
    pub breaker_threshold: u32,
    pub dead_letter_queue: String,
    pub quarantine_queue: String,
    /// Free bytes under the data directory below which the resource alarm is raised.
    pub disk_free_limit: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            queues: QueuesOptions::default(),
            plugins: HostConfig::default(),
            breaker_threshold: 5,
            dead_letter_queue: "switchyard.dead-letter".into(),
            quarantine_queue: "switchyard.quarantine".into(),
            disk_free_limit: DEFAULT_DISK_FREE_LIMIT,
        }
    }
}

impl BrokerConfig {
    /// A throwaway broker's settings, for fuzz harnesses: relaxed durability (its data is
    /// never read after a crash), a small cache, and no free-disk alarm.
    #[doc(hidden)]
    pub fn scratch() -> BrokerConfig {
        BrokerConfig {
            queues: QueuesOptions {
                store: crate::store::StoreConfig {
                    durability: crate::store::Durability::Relaxed,
                    cache_capacity: 8 << 20,
                    ..crate::store::StoreConfig::default()
                },
                ..QueuesOptions::default()
            },
            disk_free_limit: 0,
            ..BrokerConfig::default()
        }
    }
}

/// What routing needs.
#[derive(Debug)]
struct Core {
    queues: QueueStore,
    plugins: Arc<PluginHost>,
    breakers: Breakers,
    special: SpecialQueues,
}

impl Core {
    /// A routing pass over `topology`. A plain function, not an `async fn` awaiting the route:
    /// every level of `async fn` copies the future it awaits (see `amqp::channel::accept`).
    fn router<'a>(&'a self, topology: &'a Topology, dry_run: bool) -> Router<'a> {
        Router {
            topology,
            plugins: &self.plugins,
            breakers: &self.breakers,
            special: &self.special,
            queues: &self.queues,
            dry_run,
            decision: Decision::default(),
            seen: HashSet::new(),
            answered: None,
        }
    }
}

/// The broker. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Broker {
    dir: PathBuf,
    core: Arc<Core>,
    /// Invariant: equals what `topology_file` holds for durable entries, because every change
    /// is saved while this lock is held for writing. Readers take a cheap `Arc` snapshot and
    /// route without holding the lock.
    topology: RwLock<Arc<Topology>>,
    topology_file: TopologyFile,
    counters: BrokerCounters,
    verdicts: verdicts::VerdictCounts,
    /// Serialises replays so two redrives of one queue do not interleave.
    replay_lock: tokio::sync::Mutex<()>,
    alarm: ResourceAlarm,
    /// Set once, in cluster mode: where client-made topology changes are published.
    topology_sink: OnceLock<Arc<dyn TopologySink>>,
}

impl Broker {
    /// Open (or create) a broker in `dir`: queues in `dir/queues`, plugins in `dir/plugins`,
    /// topology in `dir/topology.json`.
    pub fn open(dir: impl AsRef<Path>, config: BrokerConfig) -> Result<Broker, BrokerError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir(&dir)?;
        let queues = Queues::open(dir.join("queues"), config.queues.clone())?;
        Broker::with_store(dir, config, queues.into())
    }

    /// Open a broker over queues that live elsewhere (a JetStream namespace shared with other
    /// nodes); `dir` holds this node's plugins and its copy of the topology.
    /// `config.queues` is not used.
    pub fn with_store(
        dir: impl AsRef<Path>,
        config: BrokerConfig,
        queues: QueueStore,
    ) -> Result<Broker, BrokerError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir(&dir)?;
        let plugins = Arc::new(PluginHost::open(dir.join("plugins"), config.plugins)?);
        let topology_file = TopologyFile::new(&dir);
        let topology = topology_file.load()?;
        let special = SpecialQueues {
            dead_letter: config.dead_letter_queue,
            quarantine: config.quarantine_queue,
        };
        for q in [&special.dead_letter, &special.quarantine] {
            let name = QueueName::new(q.clone())?;
            if !queues.exists(name.as_str()) {
                queues.declare(&name, QueueConfig::default())?;
            }
        }
        let core = Core {
            queues,
            plugins,
            breakers: Breakers::new(config.breaker_threshold),
            special,
        };
        let alarm = ResourceAlarm::new(dir.clone(), config.disk_free_limit);
        Ok(Broker {
            dir,
            core: Arc::new(core),
            topology: RwLock::new(Arc::new(topology)),
            topology_file,
            counters: BrokerCounters::default(),
            verdicts: verdicts::VerdictCounts::default(),
            replay_lock: tokio::sync::Mutex::new(()),
            alarm,
            topology_sink: OnceLock::new(),
        })
    }

    /// Publish every client-made topology change to `sink` from now on (cluster mode). Set
    /// once; a second call is refused.
    pub fn set_topology_sink(&self, sink: Arc<dyn TopologySink>) -> Result<(), BrokerError> {
        self.topology_sink
            .set(sink)
            .map_err(|_| BrokerError::Rejected("a topology sink is already set".into()))
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn queues(&self) -> &QueueStore {
        &self.core.queues
    }

    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.core.plugins
    }

    pub fn breakers(&self) -> &Breakers {
        &self.core.breakers
    }

    pub fn counters(&self) -> &BrokerCounters {
        &self.counters
    }

    /// The resource alarm (see [`Broker::check_resources`]).
    pub fn alarm(&self) -> &ResourceAlarm {
        &self.alarm
    }

    /// Re-evaluate the resource alarm (free disk space, store health); `Some(reason)` while
    /// publishes should be held back. Front ends call this periodically.
    pub fn check_resources(&self) -> Option<String> {
        let store = self.queues().health().err().map(|e| e.to_string());
        self.alarm.evaluate(store)
    }

    /// Set the alarm's free-disk threshold (bytes) and re-evaluate at once.
    pub fn set_disk_free_limit(&self, bytes: u64) -> Option<String> {
        self.alarm.set_disk_free_limit(bytes);
        self.check_resources()
    }

    /// Calls, verdicts and latency of each version of `plugin` in committed publishes since the
    /// broker opened.
    pub fn plugin_verdicts(&self, plugin: &str) -> VersionVerdicts {
        self.verdicts.get(plugin)
    }

    pub fn special_queues(&self) -> &SpecialQueues {
        &self.core.special
    }

    /// A snapshot of the topology (for listing and export).
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }

    pub fn declare_exchange(&self, exchange: Exchange) -> Result<bool, BrokerError> {
        let change = TopologyChange::DeclareExchange(exchange.clone());
        self.change_topology(Some(&change), |t| Ok(t.declare_exchange(exchange)?))
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        let change = TopologyChange::DeleteExchange(name.to_owned());
        self.change_topology(Some(&change), |t| Ok(t.delete_exchange(name, if_unused)?))
    }

    /// Bind; the target queue or exchange must exist.
    pub fn bind(&self, binding: Binding) -> Result<(), BrokerError> {
        if let BindingTarget::Queue(q) = &binding.target {
            self.queues().config(&QueueName::new(q.clone())?)?;
        }
        let change = TopologyChange::Bind(binding.clone());
        self.change_topology(Some(&change), |t| Ok(t.bind(binding)?))
    }

    pub fn unbind(&self, binding: &Binding) -> Result<(), BrokerError> {
        let change = TopologyChange::Unbind(binding.clone());
        self.change_topology(Some(&change), |t| {
            t.unbind(binding);
            Ok(())
        })
    }

    /// Apply a change that came from the cluster (not published again). A binding whose
    /// queue this node does not know (yet) is applied anyway: routing skips a missing queue.
    pub fn apply_topology(&self, change: TopologyChange) -> Result<(), BrokerError> {
        self.change_topology(None, |t| {
            match change {
                TopologyChange::DeclareExchange(e) => drop(t.declare_exchange(e)?),
                TopologyChange::DeleteExchange(name) => t.delete_exchange(&name, false)?,
                TopologyChange::Bind(b) => t.bind(b)?,
                TopologyChange::Unbind(b) => t.unbind(&b),
            }
            Ok(())
        })
    }

    pub fn declare_queue(&self, name: &QueueName, config: QueueConfig) -> Result<(), BrokerError> {
        Ok(self.queues().declare(name, config)?)
    }

    /// Delete a queue and every binding to it; returns how many messages it held.
    pub fn delete_queue(&self, name: &QueueName) -> Result<u64, BrokerError> {
        let n = self.queues().delete(name)?;
        self.unbind_queues(std::slice::from_ref(name))?;
        Ok(n)
    }

    /// Removes every binding to `queues` (deleted), here and, in cluster mode, everywhere.
    fn unbind_queues(&self, queues: &[QueueName]) -> Result<(), BrokerError> {
        let target = |b: &Binding| matches!(&b.target, BindingTarget::Queue(q) if queues.iter().any(|n| n.as_str() == q));
        let bindings: Vec<Binding> = self
            .topology()
            .bindings()
            .filter(|b| target(b))
            .cloned()
            .collect();
        if let Some(sink) = self.topology_sink.get() {
            for b in bindings {
                sink.publish(&TopologyChange::Unbind(b))
                    .map_err(BrokerError::Cluster)?;
            }
        }
        self.change_topology(None, |t| {
            for name in queues {
                t.unbind_queue(name.as_str());
            }
            Ok(())
        })
    }

    /// Delete the queues whose `expires_ms` has passed unused (see
    /// [`Queues::delete_expired`]), with their bindings; returns their names. Nothing calls
    /// this on its own: a front end that offers expiring queues calls it periodically.
    pub fn delete_expired_queues(&self) -> Result<Vec<QueueName>, BrokerError> {
        let names = self.queues().delete_expired()?;
        if !names.is_empty() {
            self.unbind_queues(&names)?;
        }
        Ok(names)
    }

    /// Applies `f` to a copy of the topology; if it succeeds, publishes `change` (a client's
    /// change, in cluster mode), saves the copy and makes it current — under the write lock,
    /// so changes reach the cluster in the order they are committed here.
    fn change_topology<T>(
        &self,
        change: Option<&TopologyChange>,
        f: impl FnOnce(&mut Topology) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let mut topology = self.topology.write();
        let mut next = Topology::clone(&topology);
        let out = f(&mut next)?;
        if let (Some(change), Some(sink)) = (change, self.topology_sink.get()) {
            sink.publish(change).map_err(BrokerError::Cluster)?;
        }
        self.topology_file.save(&next)?;
        *topology = Arc::new(next);
        Ok(out)
    }
}

fn create_dir(dir: &Path) -> Result<(), BrokerError> {
    std::fs::create_dir_all(dir).map_err(|e| BrokerError::TopologyFile {
        path: dir.display().to_string(),
        cause: format!("cannot create the data directory: {e}"),
    })
}
