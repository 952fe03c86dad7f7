//! The cluster plugin registry (`cluster::PluginSync`) over the local NATS: three brokers, each
//! following the registry. A plugin deployed through node A routes messages published on node
//! C; a hot swap through B and a rollback through C reach every node. Skipped, saying so, when
//! NATS is not at 127.0.0.1:4222 (`SWITCHYARD_TEST_NATS`).

use std::time::{Duration, Instant};

use std::sync::Arc;
use switchyard::broker::LINEAGE_HEADER;

use switchyard::cluster::{Cluster, PluginSync};
use switchyard::message::FieldValue;
use switchyard::plugin::{DeployOptions, PluginHost};
use switchyard::queue::jetstream::{JetStreamOptions, JetStreamQueues};
use switchyard::queue::QueueStore;
use switchyard::routing::{Binding, BindingTarget, Exchange, ExchangeKind};

use super::*;
use crate::support::nats::first_node;
use crate::support::plugins::with_custom_section;

/// Waits until `env`'s plugin host serves `version` of `name`; returns how long that took.
async fn serving(env: &Env, name: &str, version: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(20);
    loop {
        if env
            .broker
            .plugins()
            .current(name)
            .is_some_and(|(_, v)| v == version)
        {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{name}@{version} never reached this node"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_deployed_on_one_node_routes_on_another_and_swaps_everywhere() {
    let Some(first) = first_node("plugins").await else {
        return;
    };
    let options = first.options().clone();
    let nodes = [Env::new(), Env::new(), Env::new()];
    let mut syncs = Vec::new();
    let mut followers = Vec::new();
    for node in &nodes {
        let store = JetStreamQueues::connect(options.clone()).await.unwrap();
        let sync = PluginSync::open(&store).await.unwrap();
        followers.push(
            sync.follow(PluginHost::clone(node.broker.plugins()))
                .await
                .unwrap(),
        );
        syncs.push(sync);
    }
    let [a, b, c] = &nodes;

    // Deployed through A.
    let v1 = rust_plugin_bytes("header_router");
    let opts = DeployOptions {
        config: [
            ("header".to_string(), "region".to_string()),
            ("route.eu".into(), "orders-eu".into()),
        ]
        .into(),
        ..DeployOptions::default()
    };
    let started = Instant::now();
    let head = syncs[0]
        .deploy(a.broker.plugins(), "router", v1.clone(), opts.clone())
        .await
        .unwrap();
    let took = serving(c, "router", &head.version, started).await;
    println!("a deploy through node A served on node C after {took:?}");

    // Published on C, routed by the plugin A deployed.
    c.queue("orders-eu");
    c.broker
        .declare_exchange(Exchange::new(
            "orders",
            ExchangeKind::Wasm {
                plugin: "router".into(),
            },
        ))
        .unwrap();
    let published = c
        .publish("orders", "", msg("order").with_header("region", "eu"))
        .await;
    assert_eq!(
        published.decision.queues().collect::<Vec<_>>(),
        ["orders-eu"]
    );
    let lineage = c.messages("orders-eu")[0]
        .header(LINEAGE_HEADER)
        .map(|v| v.into_owned());
    assert_eq!(
        lineage,
        Some(FieldValue::Array(vec![
            format!("router@{}", head.version).into()
        ]))
    );

    // A hot swap through B reaches A and C.
    let v2 = with_custom_section(&v1, "second version");
    let started = Instant::now();
    let head2 = syncs[1]
        .deploy(b.broker.plugins(), "router", v2, opts.clone())
        .await
        .unwrap();
    assert_ne!(head2.version, head.version);
    for node in [a, c] {
        let took = serving(node, "router", &head2.version, started).await;
        println!("a hot swap through node B served after {took:?}");
    }

    // A rollback through C brings v1 back everywhere.
    let back = syncs[2].rollback("router").await.unwrap();
    assert_eq!(back.version, head.version);
    let started = Instant::now();
    for node in &nodes {
        serving(node, "router", &head.version, started).await;
    }

    // A version that does not load is refused before it reaches the cluster.
    let err = syncs[0]
        .deploy(
            a.broker.plugins(),
            "router",
            b"not a component".to_vec(),
            opts,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not load"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for node in &nodes {
        assert_eq!(
            node.broker.plugins().current("router").unwrap().1,
            head.version
        );
    }

    for f in followers {
        f.abort();
    }
    first.remove_namespace().await.unwrap();
}

/// A node over the cluster's JetStream store, publishing its topology changes there and
/// following the cluster's.
async fn node(
    options: &JetStreamOptions,
) -> (
    tempfile::TempDir,
    Arc<Broker>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::connect(options.clone()).await.unwrap();
    let store = QueueStore::JetStream(cluster.store.clone());
    let broker =
        Arc::new(Broker::with_store(dir.path(), config(Durability::Relaxed), store).unwrap());
    let followers = cluster.join(&broker).await.unwrap();
    (dir, broker, followers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_and_bindings_declared_through_one_node_route_on_the_others() {
    let Some(first) = first_node("topology").await else {
        return;
    };
    let ((_da, a, fa), (_db, b, fb)) = (node(first.options()).await, node(first.options()).await);
    // Queues are the cluster's: declared through A, B has it too.
    let queue = QueueName::new("eu-orders").unwrap();
    a.declare_queue(&queue, QueueConfig::default()).unwrap();

    a.declare_exchange(Exchange::new("orders", ExchangeKind::Topic))
        .unwrap();
    let binding = Binding {
        source: "orders".into(),
        target: BindingTarget::Queue("eu-orders".into()),
        routing_key: "eu.*".into(),
        arguments: Default::default(),
        filter: None,
    };
    a.bind(binding.clone()).unwrap();
    let started = Instant::now();
    loop {
        let t = b.topology();
        if t.exchange("orders").is_some() && t.bindings().any(|x| x.same_as(&binding)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the topology never reached node B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "an exchange and a binding declared through A reached B after {:?}",
        started.elapsed()
    );
    let p = b
        .publish("orders", "eu.paris", msg("order"), false)
        .await
        .unwrap();
    assert_eq!(p.decision.queues().collect::<Vec<_>>(), ["eu-orders"]);
    assert_eq!(
        a.queues().stats(&queue).unwrap().messages,
        1,
        "published through B, stored for all"
    );

    // An inequivalent redeclaration is refused on the node that tried it, and never spreads.
    let err = b
        .declare_exchange(Exchange::new("orders", ExchangeKind::Fanout))
        .unwrap_err();
    assert!(err.to_string().contains("different settings"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.topology().exchange("orders").unwrap().kind,
        ExchangeKind::Topic
    );

    // Unbinding and deleting through B reach node A.
    b.unbind(&binding).unwrap();
    b.delete_exchange("orders", false).unwrap();
    let started = Instant::now();
    while a.topology().exchange("orders").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the deletion never reached node A"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!a.topology().bindings().any(|x| x.same_as(&binding)));
    assert_eq!(a.topology().exchange("orders"), None);

    for f in fa.into_iter().chain(fb) {
        f.abort();
    }
    first.remove_namespace().await.unwrap();
}
