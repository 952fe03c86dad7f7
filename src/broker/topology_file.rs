//! Durable exchanges and bindings, kept in one file beside the queue store.
//!
//! Why a file and not the queue store: topology changes are rare and small, and a whole-file
//! rewrite (temp file, fsync, rename, fsync the directory) makes every change atomic without
//! coupling routing to the queue engine's keyspace.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BrokerError;
use crate::routing::{Binding, BindingTarget, Exchange, Topology};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    version: u32,
    exchanges: Vec<Exchange>,
    bindings: Vec<Binding>,
}

/// Where the topology lives on disk.
#[derive(Debug, Clone)]
pub struct TopologyFile {
    path: PathBuf,
}

impl TopologyFile {
    pub fn new(dir: &Path) -> Self {
        TopologyFile { path: dir.join("topology.json") }
    }

    fn error(&self, cause: impl ToString) -> BrokerError {
        BrokerError::TopologyFile { path: self.path.display().to_string(), cause: cause.to_string() }
    }

    /// Load the saved topology over the predefined exchanges. A missing file is an empty
    /// topology; an unreadable one is an error (never silently reset).
    pub fn load(&self) -> Result<Topology, BrokerError> {
        let mut topology = Topology::with_defaults();
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(topology),
            Err(e) => return Err(self.error(e)),
        };
        let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
        if saved.version != VERSION {
            return Err(self.error(format!("unknown version {}", saved.version)));
        }
        for ex in saved.exchanges {
            topology.declare_exchange(ex)?;
        }
        for b in saved.bindings {
            topology.bind(b)?;
        }
        Ok(topology)
    }

    /// Save the durable part of `topology`: durable user exchanges, and bindings whose source
    /// and (for exchange targets) destination are durable.
    pub fn save(&self, topology: &Topology) -> Result<(), BrokerError> {
        let durable = |name: &str| topology.exchange(name).is_some_and(|e| e.durable);
        let mut exchanges: Vec<Exchange> = topology
            .exchanges()
            .filter(|e| e.durable && !e.name.is_empty() && !e.name.starts_with("amq."))
            .cloned()
            .collect();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        let bindings = topology
            .bindings()
            .filter(|b| {
                durable(&b.source)
                    && match &b.target {
                        BindingTarget::Exchange(e) => durable(e),
                        BindingTarget::Queue(_) => true,
                    }
            })
            .cloned()
            .collect();
        let saved = Saved { version: VERSION, exchanges, bindings };
        let bytes = serde_json::to_vec_pretty(&saved).map_err(|e| self.error(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.error(e))
    }
}
