//! Scale-out over NATS JetStream (issue 9): W1 and W2 through the JetStream queue store with
//! 1, 2 and 3 nodes sharing one JetStream.
//!
//! A node here is one `JetStreamQueues` with its own NATS connection, its own publisher and its
//! own consumers, as one Switchyard process would have; the nodes live in this process and
//! skip the AMQP front end, so the figures are the store's (what JetStream bounds). Every node publishes its share and
//! consumes from the shared queues; a run ends when every message was consumed and acked.
//!
//! - W1: 1 KiB messages into one queue, up to 256 publishes in flight per node, one consumer
//!   per node with prefetch 500.
//! - W2: each message into 2 of 10 queues (one publish, two streams); one consumer per queue
//!   per node. Reported as deliveries per second.
//!
//! Then the same workloads through real nodes (`scaleout/nodes.rs`): N `switchyard serve
//! --store nats://…` processes, AMQP clients (lapin) in this process.
//!
//! `cargo bench --bench scaleout [-- --messages N --rounds R --only store|nodes]`. Without
//! `--bench` (as `cargo test --all-targets` runs it) a few hundred messages, as a smoke test
//! (through nodes: W1 with 2 nodes only). Skips, saying so,
//! when NATS is not at 127.0.0.1:4222 (`SWITCHYARD_BENCH_NATS` overrides).

#[path = "scaleout/nodes.rs"]
mod nodes;
#[path = "compare/procfs.rs"]
#[allow(dead_code)]
mod procfs;
#[path = "compare/readyz.rs"]
mod readyz;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::message::Message;
use switchyard::queue::jetstream::{JetStreamError, JetStreamOptions, JetStreamQueues};
use switchyard::queue::{ConsumerOptions, PublishItem, QueueConfig, QueueName};
use tokio::sync::Semaphore;

const IN_FLIGHT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Workload {
    W1,
    W2,
}

impl Workload {
    fn queues(self) -> Vec<QueueName> {
        let n = match self {
            Workload::W1 => 1,
            Workload::W2 => 10,
        };
        (0..n)
            .map(|i| QueueName::new(format!("scale-{i}")).unwrap())
            .collect()
    }

    /// The queues message `i` goes to.
    fn targets(self, i: usize) -> Vec<usize> {
        match self {
            Workload::W1 => vec![0],
            Workload::W2 => vec![i % 10, (i + 3) % 10],
        }
    }
}

fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One run: deliveries/s, NATS server CPU µs per delivery, this process's CPU µs per delivery.
async fn run(url: &str, workload: Workload, nodes: usize, messages: usize) -> [f64; 3] {
    let mut options = JetStreamOptions::new(url);
    options.namespace = format!("SYB_{}_{}", std::process::id(), rand::random::<u32>());
    let first = JetStreamQueues::connect(options.clone()).await.unwrap();
    let queues = workload.queues();
    for q in &queues {
        first.declare(q, QueueConfig::default()).await.unwrap();
    }
    let mut stores = vec![first.clone()];
    for _ in 1..nodes {
        stores.push(JetStreamQueues::connect(options.clone()).await.unwrap());
    }
    let deliveries: usize = (0..messages).map(|i| workload.targets(i).len()).sum();
    let nats = procfs::find_process("nats-server");
    let nats_cpu = || nats.and_then(procfs::cpu_seconds).unwrap_or(0.0);
    let (start, cpu, server_cpu) = (Instant::now(), process_cpu(), nats_cpu());

    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for q in &queues {
            let mut consumer = store
                .consume(
                    q,
                    ConsumerOptions {
                        prefetch: 500,
                        push: true,
                    },
                )
                .await
                .unwrap();
            let received = received.clone();
            tasks.push(tokio::spawn(async move {
                while received.load(std::sync::atomic::Ordering::Relaxed) < deliveries {
                    let Ok(d) =
                        tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await
                    else {
                        continue;
                    };
                    let d = d.unwrap().unwrap();
                    consumer.ack(d.tag, false).await.unwrap();
                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        let (store, queues) = (store.clone(), queues.clone());
        tasks.push(tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(IN_FLIGHT));
            let body = vec![b'x'; 1024];
            for i in (n..messages).step_by(nodes) {
                let permit = permits.clone().acquire_owned().await.unwrap();
                let m = Message::new(body.clone());
                let items = workload
                    .targets(i)
                    .into_iter()
                    .map(|t| PublishItem::new(queues[t].clone(), m.clone()))
                    .collect();
                let pending = store.enqueue(items).await.unwrap();
                tokio::spawn(async move {
                    let receipt = pending.durable().await.unwrap();
                    assert!(receipt.outcomes.iter().all(|o| o.is_stored()));
                    drop(permit);
                });
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per = |seconds: f64| seconds * 1e6 / deliveries as f64;
    let result = [
        deliveries as f64 / elapsed,
        per(nats_cpu() - server_cpu),
        per((process_cpu() - cpu).as_secs_f64()),
    ];
    drop(stores);
    first.remove_namespace().await.unwrap();
    result
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let messages = arg("--messages").unwrap_or(if smoke { 300 } else { 20_000usize });
    let rounds = arg("--rounds").unwrap_or(1usize);
    let url =
        std::env::var("SWITCHYARD_BENCH_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Err(e @ JetStreamError::Connect { .. }) =
        rt.block_on(JetStreamQueues::connect(JetStreamOptions::new(url.clone())))
    {
        println!("skipped: {e}");
        return;
    }
    let only: Option<String> = arg("--only");
    let cases: Vec<(Workload, usize)> = [Workload::W1, Workload::W2]
        .into_iter()
        .flat_map(|w| [1, 2, 3].map(|n| (w, n)))
        .collect();
    if only.as_deref() != Some("nodes") {
        let title = "store only, nodes in this process";
        let rows = rounds_of(rounds, &cases, |w, n| {
            rt.block_on(run(&url, w, n, messages)).to_vec()
        });
        table(title, rounds, &["NATS", "nodes'"], &cases, &rows);
    }
    if only.as_deref() != Some("store") {
        let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
        let cases = match smoke {
            true => vec![(Workload::W1, 2)],
            false => cases,
        };
        let rows = rounds_of(rounds, &cases, |w, n| {
            rt.block_on(nodes::run(&binary, &url, w, n, messages))
                .to_vec()
        });
        let title = "through `switchyard serve --store nats://` processes, AMQP clients";
        table(
            title,
            rounds,
            &["NATS", "nodes'", "clients'"],
            &cases,
            &rows,
        );
    }
}

/// Runs every case `rounds` times; rounds alternate cases, so a machine that gets busier moves
/// every row alike. Each run's figures: deliveries/s, then CPU µs per delivery columns.
fn rounds_of(
    rounds: usize,
    cases: &[(Workload, usize)],
    mut run: impl FnMut(Workload, usize) -> Vec<f64>,
) -> Vec<Vec<Vec<f64>>> {
    let mut runs = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (c, &(workload, nodes)) in cases.iter().enumerate() {
            runs[c].push(run(workload, nodes));
        }
    }
    runs
}

/// Prints the medians as a Markdown table.
fn table(
    title: &str,
    rounds: usize,
    cpu: &[&str],
    cases: &[(Workload, usize)],
    runs: &[Vec<Vec<f64>>],
) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\n{title}\n");
    let cpu_columns: String = cpu
        .iter()
        .map(|who| format!(" {who} CPU µs/delivery |"))
        .collect();
    println!("| workload | nodes | deliveries/s (median of {rounds}) |{cpu_columns}");
    println!("|---|---|---|{}", "---|".repeat(cpu.len()));
    for (c, (workload, nodes)) in cases.iter().enumerate() {
        let column = |i: usize| median(runs[c].iter().map(|r| r[i]).collect());
        let cpus: String = (1..=cpu.len())
            .map(|i| format!(" {:.1} |", column(i)))
            .collect();
        println!("| {workload:?} | {nodes} | {:.0} |{cpus}", column(0));
    }
}
