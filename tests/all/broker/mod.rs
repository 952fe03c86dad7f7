//! The broker layer over a real sled store and real plugins built from `plugins/`.

mod builtin;
mod cluster;
mod crash;
mod plugins;

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard::broker::{Broker, BrokerConfig};
use switchyard::message::{Message, MessageId};
use switchyard::plugin::{DeployOptions, HostConfig, PluginLimits};
use switchyard::queue::{QueueConfig, QueueName, QueuesOptions};
use switchyard::store::{Durability, StoreConfig};

use crate::support::plugins::rust_plugin_bytes;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub broker: Broker,
}

/// A broker config for tests. The default plugin deadline is raised to 5 s: deadlines are
/// wall-clock, and a warm call descheduled on a loaded 2-core CI machine must not time out. The
/// deadline tests deploy with their own short limit.
pub fn config(durability: Durability) -> BrokerConfig {
    let mut plugins = HostConfig::default();
    plugins.default_limits.timeout = Duration::from_secs(5);
    BrokerConfig {
        queues: QueuesOptions {
            store: StoreConfig {
                durability,
                cache_capacity: 8 << 20,
                ..StoreConfig::default()
            },
            ..QueuesOptions::default()
        },
        plugins,
        ..BrokerConfig::default()
    }
}

impl Env {
    pub fn new() -> Env {
        Env::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut BrokerConfig)) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(Durability::Relaxed);
        f(&mut cfg);
        let broker = Broker::open(dir.path(), cfg).unwrap();
        Env { dir, broker }
    }

    /// Close and reopen the broker on the same directory.
    pub fn reopen(self) -> Env {
        let Env { dir, broker } = self;
        drop(broker);
        let broker = Broker::open(dir.path(), config(Durability::Relaxed)).unwrap();
        Env { dir, broker }
    }

    pub fn queue(&self, name: &str) -> QueueName {
        let q = QueueName::new(name).unwrap();
        self.broker
            .declare_queue(&q, QueueConfig::default())
            .unwrap();
        q
    }

    /// Bodies stored in a queue, in order.
    pub fn bodies(&self, name: &str) -> Vec<String> {
        self.messages(name)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .collect()
    }

    pub fn messages(&self, name: &str) -> Vec<Message> {
        let q = QueueName::new(name).unwrap();
        self.broker
            .queues()
            .embedded()
            .unwrap()
            .browse(&q, 10_000)
            .unwrap()
    }

    pub fn deploy(&self, name: &str, crate_name: &str, config: &[(&str, &str)]) -> String {
        self.deploy_with(name, crate_name, config, None)
    }

    pub fn deploy_with(
        &self,
        name: &str,
        crate_name: &str,
        config: &[(&str, &str)],
        limits: Option<PluginLimits>,
    ) -> String {
        let opts = DeployOptions {
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            limits,
            ..DeployOptions::default()
        };
        let info = self
            .broker
            .plugins()
            .deploy(name, &rust_plugin_bytes(crate_name), opts)
            .unwrap();
        info.version
    }

    pub async fn publish(
        &self,
        exchange: &str,
        key: &str,
        message: Message,
    ) -> switchyard::broker::Published {
        self.broker
            .publish(exchange, key, message, false)
            .await
            .unwrap()
    }
}

pub fn msg(body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
}

pub fn msg_id(body: &str, id: &str) -> Message {
    msg(body).with_id(MessageId::from(id))
}
