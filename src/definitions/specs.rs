//! The spec types of a definitions document, and their mapping onto the broker's own types
//! (exchanges, queues, bindings, plugin deployments).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{broker_err, invalid, DefinitionsError};
use crate::broker::Broker;
use crate::plugin::harness::{field_to_json, json_to_field};
use crate::plugin::{DeployOptions, PluginError, PluginKind};
use crate::queue::{Overflow, QueueConfig, QueueError, QueueName, RetryPolicy};
use crate::routing::{Binding, BindingTarget, Exchange, ExchangeKind, FailurePolicy};
use crate::store::Durability;

/// A queue and its policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deliveries: Option<u32>,
    /// Delays before the n-th redelivery after a nack with requeue; the last repeats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retry_delays_ms: Vec<u64>,
    /// Any retry policy, in the queue engine's form (wins over `retry_delays_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_ttl_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// `reject-publish` (default) or `drop-head`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    /// Delete the queue after this long unused (AMQP `x-expires`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// `fsync` or `relaxed`; absent: the store's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
}

/// An exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeSpec {
    pub name: String,
    /// `direct`, `fanout`, `topic`, `headers` or `x-wasm`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The router plugin of an `x-wasm` exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Filter and transform plugins run before routing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipeline: Vec<String>,
    /// `dead-letter` (default), `reject`, `drop` or `fallback:<queue>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate_exchange: Option<String>,
    pub internal: bool,
    pub auto_delete: bool,
}

/// A binding from exchange `source` to a queue or exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BindingSpec {
    pub source: String,
    pub destination: String,
    /// `queue` (default) or `exchange`.
    pub destination_type: String,
    pub routing_key: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub arguments: Map<String, Value>,
    /// A filter plugin that must keep a message for this binding to take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// A plugin deployment. `file` is relative to the definitions file; without it the plugin
/// must already be deployed (at `version`, when given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<PluginKind>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

impl PluginSpec {
    pub(super) fn apply(&self, broker: &Broker, base: &Path) -> Result<(), DefinitionsError> {
        let what = format!("plugin {}", self.name);
        let host = broker.plugins();
        let Some(file) = &self.file else {
            return match (host.current(&self.name), &self.version) {
                (Some((_, have)), Some(want)) if &have != want => Err(invalid(
                    what,
                    format!("deployed at {have}, definitions want {want}: give `file`"),
                )),
                (Some(_), _) => Ok(()),
                (None, _) => Err(invalid(what, "not deployed: give `file`")),
            };
        };
        let opts = DeployOptions {
            kind: self.kind,
            config: self.config.clone(),
            limits: None,
        };
        host.deploy_file(&self.name, base.join(file), opts)
            .map_err(|e: PluginError| broker_err(what)(e))?;
        Ok(())
    }
}

impl QueueSpec {
    pub fn to_config(&self) -> Result<(QueueName, QueueConfig), DefinitionsError> {
        let what = || format!("queue {}", self.name);
        let name = QueueName::new(self.name.clone())
            .map_err(|e: QueueError| invalid(what(), e.to_string()))?;
        let retry = match (&self.retry, self.retry_delays_ms.is_empty()) {
            (Some(r), _) => r.clone(),
            (None, true) => RetryPolicy::Immediate,
            (None, false) => RetryPolicy::List {
                delays_ms: self.retry_delays_ms.clone(),
            },
        };
        let overflow = match self.overflow.as_deref() {
            None | Some("reject-publish") => Overflow::RejectPublish,
            Some("drop-head") => Overflow::DropHead,
            Some(o) => {
                return Err(invalid(
                    what(),
                    format!("overflow {o:?}: expected reject-publish or drop-head"),
                ))
            }
        };
        let durability = match self.durability.as_deref() {
            None => None,
            Some("fsync") => Some(Durability::Fsync),
            Some("relaxed") => Some(Durability::Relaxed),
            Some(d) => {
                return Err(invalid(
                    what(),
                    format!("durability {d:?}: expected fsync or relaxed"),
                ))
            }
        };
        let dead_letter = match &self.dead_letter {
            Some(d) => Some(
                QueueName::new(d.clone())
                    .map_err(|e: QueueError| invalid(what(), e.to_string()))?,
            ),
            None => None,
        };
        let config = QueueConfig {
            durability,
            max_deliveries: self.max_deliveries,
            retry,
            dead_letter,
            message_ttl_ms: self.message_ttl_ms,
            max_length: self.max_length,
            overflow,
            dedup_window_ms: self.dedup_window_ms,
            expires_ms: self.expires_ms,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
        };
        Ok((name, config))
    }

    pub fn from_config(name: &str, c: &QueueConfig) -> QueueSpec {
        QueueSpec {
            name: name.to_owned(),
            max_deliveries: c.max_deliveries,
            retry_delays_ms: Vec::new(),
            retry: (c.retry != RetryPolicy::Immediate).then(|| c.retry.clone()),
            dead_letter: c.dead_letter.as_ref().map(|d| d.to_string()),
            message_ttl_ms: c.message_ttl_ms,
            max_length: c.max_length,
            overflow: c.max_length.map(|_| match c.overflow {
                Overflow::RejectPublish => "reject-publish".into(),
                Overflow::DropHead => "drop-head".into(),
            }),
            dedup_window_ms: c.dedup_window_ms,
            expires_ms: c.expires_ms,
            durability: c.durability.map(|d| match d {
                Durability::Fsync => "fsync".into(),
                Durability::Relaxed => "relaxed".into(),
            }),
        }
    }
}

impl ExchangeSpec {
    pub fn to_exchange(&self) -> Result<Exchange, DefinitionsError> {
        let what = || format!("exchange {}", self.name);
        let kind = match (self.kind.as_str(), &self.plugin) {
            ("direct" | "", _) => ExchangeKind::Direct,
            ("fanout", _) => ExchangeKind::Fanout,
            ("topic", _) => ExchangeKind::Topic,
            ("headers", _) => ExchangeKind::Headers,
            ("x-wasm", Some(p)) => ExchangeKind::Wasm { plugin: p.clone() },
            ("x-wasm", None) => return Err(invalid(what(), "type x-wasm needs `plugin`")),
            (t, _) => {
                return Err(invalid(
                    what(),
                    format!("type {t:?}: expected direct, fanout, topic, headers or x-wasm"),
                ))
            }
        };
        let failure_policy = match self.failure_policy.as_deref() {
            None | Some("dead-letter") => FailurePolicy::DeadLetter,
            Some("reject") => FailurePolicy::Reject,
            Some("drop") => FailurePolicy::Drop,
            Some(p) => match p.strip_prefix("fallback:") {
                Some(queue) => FailurePolicy::Fallback {
                    queue: queue.to_owned(),
                },
                None => return Err(invalid(what(), format!("failure_policy {p:?}: expected dead-letter, reject, drop or fallback:<queue>"))),
            },
        };
        let mut x = Exchange::new(self.name.clone(), kind);
        x.internal = self.internal;
        x.auto_delete = self.auto_delete;
        x.alternate_exchange = self.alternate_exchange.clone();
        x.pipeline = self.pipeline.clone();
        x.failure_policy = failure_policy;
        Ok(x)
    }

    pub fn from_exchange(x: &Exchange) -> ExchangeSpec {
        ExchangeSpec {
            name: x.name.to_string(),
            kind: x.kind.type_name().to_owned(),
            plugin: match &x.kind {
                ExchangeKind::Wasm { plugin } => Some(plugin.clone()),
                _ => None,
            },
            pipeline: x.pipeline.clone(),
            failure_policy: match &x.failure_policy {
                FailurePolicy::DeadLetter => None,
                FailurePolicy::Reject => Some("reject".into()),
                FailurePolicy::Drop => Some("drop".into()),
                FailurePolicy::Fallback { queue } => Some(format!("fallback:{queue}")),
            },
            alternate_exchange: x.alternate_exchange.clone(),
            internal: x.internal,
            auto_delete: x.auto_delete,
        }
    }
}

impl BindingSpec {
    pub fn to_binding(&self) -> Result<Binding, DefinitionsError> {
        let target = match self.destination_type.as_str() {
            "queue" | "" => BindingTarget::Queue(self.destination.clone()),
            "exchange" => BindingTarget::Exchange(self.destination.clone()),
            t => {
                return Err(invalid(
                    format!("binding {} → {}", self.source, self.destination),
                    format!("destination_type {t:?}: expected queue or exchange"),
                ))
            }
        };
        Ok(Binding {
            source: self.source.clone(),
            target,
            routing_key: self.routing_key.clone(),
            arguments: self
                .arguments
                .iter()
                .map(|(k, v)| (k.clone(), json_to_field(v.clone())))
                .collect(),
            filter: self.filter.clone(),
        })
    }

    pub fn from_binding(b: &Binding) -> BindingSpec {
        let (destination, destination_type) = match &b.target {
            BindingTarget::Queue(q) => (q.clone(), "queue"),
            BindingTarget::Exchange(x) => (x.clone(), "exchange"),
        };
        BindingSpec {
            source: b.source.clone(),
            destination,
            destination_type: destination_type.into(),
            routing_key: b.routing_key.clone(),
            arguments: b
                .arguments
                .iter()
                .map(|(k, v)| (k.clone(), field_to_json(v)))
                .collect(),
            filter: b.filter.clone(),
        }
    }
}
