//! Three `switchyard serve --store nats://…` processes over the local NATS JetStream: one
//! cluster of stateless front ends. Publish through A, consume through B and C; SIGKILL B,
//! then A, mid-stream: every confirmed message is delivered at least once, and the clients
//! reconnect to a surviving node. A plugin deployed through A's admin API routes what is
//! published through C. Skipped, saying so, when NATS is not at 127.0.0.1:4222.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

use super::process::{data_dir, http, put_bytes, Serve};
use crate::support::nats::{first_node, url};
use crate::support::plugins::rust_plugin_bytes;

const QUEUE: &str = "jobs";
const MESSAGES: usize = 3_000;

/// A node of the cluster `namespace`, its unacknowledged deliveries back after 2 s if it dies.
fn node(namespace: &str) -> (tempfile::TempDir, Serve) {
    node_with(namespace, None)
}

/// A node started with `definitions` (a JSON document), if given.
fn node_with(
    namespace: &str,
    definitions: Option<serde_json::Value>,
) -> (tempfile::TempDir, Serve) {
    let (work, data) = data_dir();
    let store = url();
    let defs = work.path().join("definitions.json");
    let mut env = vec![
        ("SWITCHYARD_STORE", store.as_str()),
        ("SWITCHYARD_STORE_NAMESPACE", namespace),
        ("SWITCHYARD_STORE_ACK_WAIT_MS", "2000"),
    ];
    if let Some(d) = definitions {
        std::fs::write(&defs, d.to_string()).unwrap();
        env.push(("SWITCHYARD_DEFINITIONS", defs.to_str().unwrap()));
    }
    let serve = Serve::start(&data, &env);
    (work, serve)
}

async fn durable_queue(ch: &lapin::Channel, name: &str) {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), durable, FieldTable::default())
        .await
        .unwrap();
}

async fn try_connect(uri: &str) -> Option<Connection> {
    within(
        Duration::from_secs(3),
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .ok()
}

/// `op`'s result, or an error once `limit` passed. A killed node's socket is closed, but a
/// client call that never hears back must not hang the test: it counts as the node gone.
async fn within<T>(
    limit: Duration,
    op: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Publishes `job-0..MESSAGES` with confirms through `uris[0]`, moving to the next node when
/// its node dies or stops answering; records every confirmed id. A publish whose confirm was
/// lost is sent again (same id) through the next node.
async fn publisher(
    uris: Vec<String>,
    confirmed: Arc<Mutex<HashSet<String>>>,
    sent: Arc<AtomicUsize>,
) {
    let mut node = 0;
    let mut next = 0;
    while next < MESSAGES {
        let uri = &uris[node % uris.len()];
        match publish_through(uri, &mut next, &confirmed, &sent).await {
            Ok(()) => {}
            Err(e) => {
                println!("publisher leaves {uri}: {e}");
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Publishes from `next` on through one node, 32 at a time, until done or the node fails.
async fn publish_through(
    uri: &str,
    next: &mut usize,
    confirmed: &Mutex<HashSet<String>>,
    sent: &AtomicUsize,
) -> Result<(), String> {
    let answer = Duration::from_secs(10);
    let conn = try_connect(uri).await.ok_or("cannot connect")?;
    let ch = within(answer, conn.create_channel()).await?;
    within(answer, ch.confirm_select(ConfirmSelectOptions::default())).await?;
    while *next < MESSAGES {
        let window = *next..(*next + 32).min(MESSAGES);
        let mut pending = Vec::new();
        for n in window.clone() {
            let id = format!("job-{n}");
            let props = BasicProperties::default().with_message_id(id.clone().into());
            let publish = ch.basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                id.as_bytes(),
                props,
            );
            let confirm = within(answer, publish).await?;
            pending.push((id, confirm));
        }
        for (id, confirm) in pending {
            if !within(answer, confirm).await?.is_ack() {
                return Err(format!("{id} was nacked"));
            }
            confirmed.lock().unwrap().insert(id);
        }
        *next = window.end;
        sent.store(*next, Ordering::SeqCst);
    }
    Ok(())
}

/// Consumes `QUEUE` through `uris[start]`, acking each delivery after recording it, moving on
/// to the next node when its node dies or stops answering, until `done`.
async fn consumer(
    uris: Vec<String>,
    start: usize,
    seen: Arc<Mutex<HashSet<String>>>,
    moves: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
) {
    let mut node = start;
    while !done.load(Ordering::SeqCst) {
        let uri = &uris[node % uris.len()];
        if let Err(e) = consume_through(uri, &seen, &done).await {
            println!("consumer leaves {uri}: {e}");
            node += 1;
            moves.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Consumes through one node until `done` or the node fails.
async fn consume_through(
    uri: &str,
    seen: &Mutex<HashSet<String>>,
    done: &AtomicBool,
) -> Result<(), String> {
    let answer = Duration::from_secs(10);
    let conn = try_connect(uri).await.ok_or("cannot connect")?;
    let ch = within(answer, conn.create_channel()).await?;
    within(answer, ch.basic_qos(50, BasicQosOptions::default())).await?;
    let consume = ch.basic_consume(
        QUEUE.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    let mut deliveries = within(answer, consume).await?;
    while !done.load(Ordering::SeqCst) {
        let Ok(next) = tokio::time::timeout(Duration::from_millis(200), deliveries.next()).await
        else {
            continue;
        };
        let d = next
            .ok_or("the consumer was cancelled")?
            .map_err(|e| e.to_string())?;
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        seen.lock().unwrap().insert(id);
        within(answer, d.ack(BasicAckOptions::default())).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_queues_and_survive_sigkill() {
    let Some(first) = first_node("nodes").await else {
        return;
    };
    let namespace = first.options().namespace.clone();
    let ((_wa, a), (_wb, b), (_wc, c)) = (node(&namespace), node(&namespace), node(&namespace));

    // Declared through C: every node knows the queue.
    let conn = try_connect(&c.amqp).await.expect("node C");
    let ch = conn.create_channel().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), durable_queue(&ch, QUEUE))
        .await
        .expect("node C declared the queue");

    let confirmed = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let moves = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // A publishes (then C, when A dies); B and C consume (B's consumer then moves on).
    let publishing = tokio::spawn(publisher(
        vec![a.amqp.clone(), c.amqp.clone()],
        confirmed.clone(),
        sent.clone(),
    ));
    let consumers: Vec<_> = [
        (vec![b.amqp.clone(), c.amqp.clone()], 0),
        (vec![c.amqp.clone()], 0),
    ]
    .into_iter()
    .map(|(uris, start)| {
        tokio::spawn(consumer(
            uris,
            start,
            seen.clone(),
            moves.clone(),
            done.clone(),
        ))
    })
    .collect();

    let wait_for = |n: usize| {
        let sent = sent.clone();
        async move {
            let started = Instant::now();
            while sent.load(Ordering::SeqCst) < n {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "publishing stalled before {n}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(MESSAGES / 3).await;
    b.kill();
    println!(
        "node B killed after {} confirmed publishes",
        confirmed.lock().unwrap().len()
    );
    wait_for(2 * MESSAGES / 3).await;
    a.kill();
    println!(
        "node A killed after {} confirmed publishes",
        confirmed.lock().unwrap().len()
    );
    tokio::time::timeout(Duration::from_secs(120), publishing)
        .await
        .expect("the publisher finished through node C")
        .unwrap();

    // Every confirmed message reaches a consumer (B's and A's unacked ones after ack_wait).
    let started = Instant::now();
    loop {
        let missing: Vec<String> = {
            let seen = seen.lock().unwrap();
            confirmed
                .lock()
                .unwrap()
                .iter()
                .filter(|id| !seen.contains(*id))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} confirmed messages never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::SeqCst);
    for task in consumers {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a consumer stopped once told to")
            .unwrap();
    }
    let confirmed = confirmed.lock().unwrap().len();
    assert_eq!(
        confirmed, MESSAGES,
        "the publisher got every message confirmed in the end"
    );
    assert!(
        moves.load(Ordering::SeqCst) >= 1,
        "B's consumer moved to a surviving node"
    );
    println!(
        "{confirmed} confirmed, all delivered; consumers moved {} times",
        moves.load(Ordering::SeqCst)
    );
    drop(c);
    first.remove_namespace().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_and_users_from_node_a_serve_on_node_c() {
    let Some(first) = first_node("nodes_plugin").await else {
        return;
    };
    let namespace = first.options().namespace.clone();
    // A's definitions list a user; C has none: the cluster's users reach C.
    let users = serde_json::json!({
        "users": [{ "name": "app", "password": "s3cret" }],
        "permissions": [{ "user": "app", "configure": ".*", "write": ".*", "read": ".*" }],
    });
    let ((_wa, a), (_wc, c)) = (node_with(&namespace, Some(users)), node(&namespace));
    let as_app = c.amqp.replace("guest:guest", "app:s3cret");
    let started = Instant::now();
    let app = loop {
        if let Some(conn) = try_connect(&as_app).await {
            break conn;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "user app never reached node C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "a user from A's definitions logged in on C after {:?}",
        started.elapsed()
    );
    drop(app);
    assert!(try_connect(&c.amqp.replace("guest:guest", "app:wrong"))
        .await
        .is_none());

    let (status, body) = put_bytes(
        &a,
        "/api/plugins/router?config.header=region&config.route.eu=orders-eu",
        &rust_plugin_bytes("header_router"),
    );
    assert_eq!(status, 201, "{body}");
    let version = body["version"]["version"]
        .as_str()
        .expect("a version")
        .to_owned();

    // Node C serves it within about a second.
    let started = Instant::now();
    loop {
        let (status, body) = http(&c, "GET", "/api/plugins/router", None);
        if status == 200 && body["current"]["version"] == version.as_str() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the plugin never reached node C"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "a plugin deployed through A served on C after {:?}",
        started.elapsed()
    );

    let conn = try_connect(&c.amqp).await.expect("node C");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    durable_queue(&ch, "orders-eu").await;
    let mut args = FieldTable::default();
    args.insert("x-plugin".into(), AMQPValue::LongString("router".into()));
    ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Custom("x-wasm".into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();

    // Published through C, routed by the plugin (basic.get is the embedded store's alone:
    // consume).
    let mut deliveries = ch
        .basic_consume(
            "orders-eu".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert("region".into(), AMQPValue::LongString("eu".into()));
    let props = BasicProperties::default().with_headers(headers);
    ch.basic_publish(
        "orders".into(),
        "".into(),
        BasicPublishOptions::default(),
        b"order",
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("the message routed by the plugin arrives")
        .unwrap()
        .unwrap();
    let lineage = d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-switchyard-lineage").cloned());
    let Some(AMQPValue::FieldArray(steps)) = lineage else {
        panic!("no lineage header: {:?}", d.properties.headers());
    };
    let steps: Vec<String> = steps
        .as_slice()
        .iter()
        .map(|v| match v {
            AMQPValue::LongString(s) => s.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(steps, [format!("router@{version}")]);
    drop((a, c));
    first.remove_namespace().await.unwrap();
}
