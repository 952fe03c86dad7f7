//! W1 and W2 through real `switchyard serve --store nats://…` processes, with AMQP clients
//! (lapin) in this process: each node gets one confirming publisher (its share of the
//! messages, `IN_FLIGHT` unconfirmed at most) and one consumer per queue (prefetch 500, ack
//! each). W2's one publish into two queues goes through a direct exchange whose key `k<t>` is
//! bound to queues `t` and `t+3`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

use super::readyz::{free_port, ready};
use super::{process_cpu, procfs, Workload, IN_FLIGHT};

/// Publishes a publisher hands lapin at once.
const PIPELINE: usize = 64;

/// One `switchyard serve` process; killed when dropped.
struct Node {
    child: Child,
    amqp: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(binary: &Path, url: &str, namespace: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (amqp, http) = (free_port().unwrap(), free_port().unwrap());
        let child = Command::new(binary)
            .arg("serve")
            .args(["--store", url, "--store-namespace", namespace])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--plugins-dir")
            .arg(dir.path().join("no-plugins"))
            .args(["--amqp-listen", &amqp.to_string()])
            .args(["--http-listen", &http.to_string()])
            .env("SWITCHYARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start switchyard serve");
        let node = Node {
            child,
            amqp,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(http) {
            assert!(
                Instant::now() < deadline,
                "switchyard serve not ready in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.amqp)
    }
}

async fn connect(uri: &str) -> Connection {
    Connection::connect(uri, ConnectionProperties::default())
        .await
        .expect("AMQP connection")
}

/// Queues (and W2's exchange), declared through one node: every node sees them.
async fn declare(conn: &Connection, workload: Workload) {
    let ch = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for q in workload.queues() {
        ch.queue_declare(q.as_str().into(), durable, FieldTable::default())
            .await
            .unwrap();
    }
    if workload == Workload::W2 {
        ch.exchange_declare(
            "scale".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        for t in 0..10 {
            for q in workload.targets(t) {
                ch.queue_bind(
                    format!("scale-{q}").into(),
                    "scale".into(),
                    format!("k{t}").into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            }
        }
    }
}

async fn publish(uri: String, workload: Workload, share: Vec<usize>) {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let body = vec![b'x'; 1024];
    // Up to `PIPELINE` publishes in lapin at once: its `basic_publish` returns only once its
    // I/O thread has written the frames (see `benches/compare/amqp.rs`).
    let mut confirms = futures::stream::iter(share)
        .map(|i| {
            let (ch, body) = (&ch, &body);
            async move {
                let (exchange, key) = match workload {
                    Workload::W1 => ("", "scale-0".to_owned()),
                    Workload::W2 => ("scale", format!("k{}", i % 10)),
                };
                ch.basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
            }
        })
        .buffered(PIPELINE);
    let mut unconfirmed = VecDeque::with_capacity(IN_FLIGHT);
    while let Some(confirm) = confirms.next().await {
        if unconfirmed.len() + PIPELINE >= IN_FLIGHT {
            let oldest: lapin::PublisherConfirm = unconfirmed.pop_front().unwrap();
            assert!(oldest.await.unwrap().is_ack());
        }
        unconfirmed.push_back(confirm.unwrap());
    }
    for confirm in unconfirmed {
        assert!(confirm.await.unwrap().is_ack());
    }
}

async fn consume(uri: String, queue: String, received: Arc<AtomicUsize>, deliveries: usize) {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(500, BasicQosOptions::default()).await.unwrap();
    let mut stream = ch
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    while received.load(Ordering::Relaxed) < deliveries {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(200), stream.next()).await
        else {
            continue;
        };
        d.unwrap().ack(BasicAckOptions::default()).await.unwrap();
        received.fetch_add(1, Ordering::Relaxed);
    }
}

/// One run: deliveries/s, and CPU µs per delivery of NATS, of the nodes, of the clients.
pub async fn run(
    binary: &Path,
    url: &str,
    workload: Workload,
    nodes: usize,
    messages: usize,
) -> [f64; 4] {
    let namespace = format!("SYN_{}_{}", std::process::id(), rand::random::<u32>());
    let started: Vec<Node> = (0..nodes)
        .map(|_| Node::start(binary, url, &namespace))
        .collect();
    let first = connect(&started[0].uri()).await;
    declare(&first, workload).await;
    let deliveries: usize = (0..messages).map(|i| workload.targets(i).len()).sum();
    let nats = procfs::find_process("nats-server");
    let cpu = |pid: Option<u32>| pid.and_then(procfs::cpu_seconds).unwrap_or(0.0);
    let nodes_cpu = || started.iter().map(|n| cpu(Some(n.child.id()))).sum::<f64>();
    let before = (Instant::now(), cpu(nats), nodes_cpu(), process_cpu());

    let received = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, node) in started.iter().enumerate() {
        for q in workload.queues() {
            let (uri, queue) = (node.uri(), q.to_string());
            tasks.push(tokio::spawn(consume(
                uri,
                queue,
                received.clone(),
                deliveries,
            )));
        }
        let share = (n..messages).step_by(nodes).collect();
        tasks.push(tokio::spawn(publish(node.uri(), workload, share)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = before.0.elapsed().as_secs_f64();
    let per = |seconds: f64| seconds * 1e6 / deliveries as f64;
    let result = [
        deliveries as f64 / elapsed,
        per(cpu(nats) - before.1),
        per(nodes_cpu() - before.2),
        per((process_cpu() - before.3).as_secs_f64()),
    ];
    drop(first);
    drop(started);
    let mut options = switchyard::queue::jetstream::JetStreamOptions::new(url);
    options.namespace = namespace;
    if let Ok(store) = switchyard::queue::jetstream::JetStreamQueues::connect(options).await {
        store.remove_namespace().await.unwrap();
    }
    result
}
