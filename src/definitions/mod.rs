//! Definitions: a broker's topology as one JSON document (exchanges, queues, bindings,
//! plugins, users and their permissions), in the spirit of RabbitMQ's definitions files. Applied at start and by the
//! admin API; exported from a running broker.
//!
//! The spec types (`specs`) are also the admin API's request bodies, so a definitions file and a
//! `POST /api/queues` body use the same words. They map onto the broker's own types; nothing here
//! knows HTTP or AMQP.

mod access;
mod specs;

pub use access::{apply_users, PermissionSpec, UserSpec};
pub use specs::{BindingSpec, ExchangeSpec, PluginSpec, QueueSpec};

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::broker::{Broker, BrokerError};

/// A whole definitions document. Every list may be absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Definitions {
    pub plugins: Vec<PluginSpec>,
    pub queues: Vec<QueueSpec>,
    pub exchanges: Vec<ExchangeSpec>,
    pub bindings: Vec<BindingSpec>,
    pub users: Vec<UserSpec>,
    pub permissions: Vec<PermissionSpec>,
}

/// Why definitions could not be applied. Entries before the failing one stay applied.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    #[error("cannot read definitions {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("definitions {path}: {cause}")]
    Parse { path: String, cause: String },
    #[error("{what}: {cause}")]
    Invalid { what: String, cause: String },
    #[error("{what}: {source}")]
    Broker {
        what: String,
        #[source]
        source: BrokerError,
    },
}

pub(crate) fn invalid(what: impl Into<String>, cause: impl Into<String>) -> DefinitionsError {
    DefinitionsError::Invalid {
        what: what.into(),
        cause: cause.into(),
    }
}

pub(crate) fn broker_err<E: Into<BrokerError>>(what: String) -> impl FnOnce(E) -> DefinitionsError {
    move |e| DefinitionsError::Broker {
        what,
        source: e.into(),
    }
}

impl Definitions {
    pub fn from_file(path: &Path) -> Result<Definitions, DefinitionsError> {
        let text = std::fs::read_to_string(path).map_err(|e| DefinitionsError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| DefinitionsError::Parse {
            path: path.display().to_string(),
            cause: e.to_string(),
        })
    }

    /// Apply to `broker`: plugins, then queues (dead-letter targets first), exchanges,
    /// bindings. Idempotent: declaring what exists with the same settings changes nothing.
    /// Deploys compile, so call this from a blocking context. `base` resolves plugin files.
    pub fn apply(&self, broker: &Broker, base: &Path) -> Result<(), DefinitionsError> {
        for p in &self.plugins {
            p.apply(broker, base)?;
        }
        let (plain, dead_lettering): (Vec<_>, Vec<_>) =
            self.queues.iter().partition(|q| q.dead_letter.is_none());
        for q in plain.into_iter().chain(dead_lettering) {
            let (name, config) = q.to_config()?;
            broker
                .declare_queue(&name, config)
                .map_err(broker_err(format!("queue {}", q.name)))?;
        }
        for x in &self.exchanges {
            broker
                .declare_exchange(x.to_exchange()?)
                .map_err(broker_err(format!("exchange {}", x.name)))?;
        }
        for b in &self.bindings {
            broker.bind(b.to_binding()?).map_err(broker_err(format!(
                "binding {} → {}",
                b.source, b.destination
            )))?;
        }
        Ok(())
    }

    /// What `broker` holds now, without the predefined exchanges and special queues.
    pub fn export(broker: &Broker) -> Definitions {
        let special = broker.special_queues();
        let topology = broker.topology();
        let mut exchanges: Vec<_> = topology
            .exchanges()
            .filter(|x| !is_predefined(&x.name))
            .map(ExchangeSpec::from_exchange)
            .collect();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        let mut bindings: Vec<_> = topology.bindings().map(BindingSpec::from_binding).collect();
        bindings.sort_by(|a, b| (&a.source, &a.destination).cmp(&(&b.source, &b.destination)));
        let queues = broker
            .queues()
            .list()
            .into_iter()
            .filter(|q| q.as_str() != special.dead_letter && q.as_str() != special.quarantine)
            .filter_map(|q| {
                let config = broker.queues().config(&q).ok()?;
                Some(QueueSpec::from_config(q.as_str(), &config))
            })
            .collect();
        let plugins = broker
            .plugins()
            .list()
            .into_iter()
            .map(|p| PluginSpec {
                name: p.name,
                file: None,
                version: Some(p.current.version),
                kind: Some(p.kind),
                config: p.current.config,
            })
            .collect();
        Definitions {
            plugins,
            queues,
            exchanges,
            bindings,
            users: Vec::new(),
            permissions: Vec::new(),
        }
    }
}

/// `""` and `amq.*`: created by the broker, never declared by users.
pub fn is_predefined(exchange: &str) -> bool {
    exchange.is_empty() || exchange.starts_with("amq.")
}
