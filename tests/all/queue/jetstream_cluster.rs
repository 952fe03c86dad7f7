//! The JetStream store on a three-node NATS cluster that this test starts on loopback ports
//! (`nats-server` from Debian's packages; skipped, saying so, when it is not installed): with
//! streams of three replicas, one NATS node is killed under load, and every publish the store
//! confirmed is still there to consume.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard::message::Message;
use switchyard::queue::jetstream::{JetStreamOptions, JetStreamQueues};
use switchyard::queue::{ConsumerOptions, PublishItem, QueueConfig, QueueName};

/// Three `nats-server` processes forming one JetStream cluster; killed on drop.
struct Cluster {
    servers: Vec<Child>,
    client_ports: Vec<u16>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start(dir: &Path) -> Option<Cluster> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: nats-server is not installed (Debian package nats-server)");
            return None;
        }
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = (0..3)
            .map(|i| {
                Command::new("nats-server")
                    .args([
                        "-a",
                        "127.0.0.1",
                        "-js",
                        "--cluster_name",
                        "switchyard-test",
                    ])
                    .args(["-n", &format!("n{i}")])
                    .args(["-p", &client_ports[i].to_string()])
                    .args(["-sd", &dir.join(format!("n{i}")).display().to_string()])
                    .args(["--cluster", &format!("nats://127.0.0.1:{}", route_ports[i])])
                    .args(["--routes", &routes])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("nats-server starts")
            })
            .collect();
        Some(Cluster {
            servers,
            client_ports,
        })
    }

    fn urls(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill(&mut self, i: usize) {
        self.servers[i].kill().unwrap();
        self.servers[i].wait().unwrap();
    }
}

/// The store on the cluster, once the cluster has elected its JetStream leader and accepts a
/// stream of three replicas.
async fn open(cluster: &Cluster) -> JetStreamQueues {
    let mut options = JetStreamOptions::new(cluster.urls());
    options.replicas = 3;
    options.ack_wait = Duration::from_secs(3);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match JetStreamQueues::connect(options.clone()).await {
            Ok(q) => match q
                .declare(&QueueName::new("probe").unwrap(), QueueConfig::default())
                .await
            {
                Ok(()) => return q,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "the cluster never formed: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_node_killed_under_load_loses_no_confirmed_publish() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cluster) = Cluster::start(dir.path()) else {
        return;
    };
    let store = open(&cluster).await;
    let q = QueueName::new("replicated").unwrap();
    store.declare(&q, QueueConfig::default()).await.unwrap();

    // One publisher, one message at a time: a publish that fails (the node it went through
    // died, the stream is electing a leader) is sent again until it is confirmed. The retry
    // carries the same message id, so it is stored once.
    const TOTAL: usize = 1_500;
    // The server this store is connected to dies: its client must move to a survivor.
    let victim: usize = store.server().trim_start_matches('n').parse().unwrap();
    let mut confirmed = HashSet::new();
    let mut retries = 0;
    let started = Instant::now();
    for i in 0..TOTAL {
        if i == TOTAL / 3 {
            cluster.kill(victim);
        }
        let m = Message::new(format!("message {i}"));
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "publishing stalled at {i}"
            );
            let item = PublishItem::new(q.clone(), m.clone());
            let sent = match store.enqueue(vec![item]).await {
                Ok(pending) => pending.durable().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(receipt) => {
                    assert!(
                        receipt.outcomes[0].is_stored() || retries > 0,
                        "{receipt:?}"
                    );
                    confirmed.insert(m.id.as_str().to_owned());
                    break;
                }
                Err(_) => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    println!("published {TOTAL}; node n{victim}, the store's own, killed after {}; {retries} retries; now on {}", TOTAL / 3, store.server());
    assert_ne!(store.server(), format!("n{victim}"));

    // Everything confirmed is there, once, and the store still serves consumers.
    // The killed server held some stream and consumer leaders: until they are re-elected,
    // opening a consumer may time out, and a node retries as it does for publishes.
    let options = ConsumerOptions {
        prefetch: 200,
        push: true,
    };
    let opened = Instant::now();
    let mut consumer = loop {
        match store.consume(&q, options).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    opened.elapsed() < Duration::from_secs(60),
                    "no consumer: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < confirmed.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} confirmed messages consumed",
            seen.len(),
            confirmed.len()
        );
        let Ok(d) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
        let d = d.unwrap().expect("the queue is not deleted");
        assert!(
            seen.insert(d.message.id.as_str().to_owned()),
            "{} delivered twice",
            d.message.id.as_str()
        );
        consumer.ack(d.tag, false).await.unwrap();
    }
    assert_eq!(seen, confirmed);
}
