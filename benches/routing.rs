//! Publish → route → enqueue throughput for each exchange type and for a WASM router.
//!
//! `cargo bench --bench routing [-- --messages N]`; without `--bench` (as `cargo test
//! --all-targets` runs it) a 400-message smoke run. Four publisher tasks keep up to 256
//! publishes in flight between them (as AMQP publishers with confirms do), submitted in batches
//! of 16 (`--batch N`; as the AMQP front end submits the publishes of one socket read) and
//! awaiting their confirmations, 1 KiB bodies, `fsync` durability, one destination queue. The
//! `x-wasm` cases route by a `region` header: one region for the whole run, or one per message
//! (the batch router's worst case: a decision per message). Not a timed test: figures go to
//! `docs/benchmarks.md`, with the recipe for counting instructions under callgrind.
//! Each case first publishes `--warmup N` messages (default 4,000) untimed, alike in every case.
//! `--rounds N` alternates all cases N times and prints medians; `--workers N` sets the
//! runtime's workers (default: the server's, `config::default_worker_threads`);
//! `--only <case> [--relaxed]` runs one case (for a profiler). It allocates with jemalloc, as the
//! server binary does.
//!
//! What bounds it: the runtime's workers (one on a two-core machine). Each row also gives the
//! CPU the workers spent per message: the flusher's `fdatasync`s run on another core, so the
//! rate is about one over that figure, and it is the column that says what a plugin costs.

#[path = "../tests/all/support/plugins.rs"]
mod plugins;

use std::sync::Arc;
use std::time::Instant;

use switchyard::broker::{Broker, BrokerConfig, Publish};
use switchyard::message::{Headers, Message};
use switchyard::plugin::{DeployOptions, VERDICT_CACHE};
use switchyard::queue::{QueueConfig, QueueName, QueuesOptions};
use switchyard::routing::{Binding, BindingTarget, Exchange, ExchangeKind};
use switchyard::store::{Durability, StoreConfig};
use tokio::sync::Semaphore;

/// The server binary's allocator (`src/bin/switchyard/alloc.rs`), so that the bench measures
/// what the broker runs; with jemalloc's default configuration, as the server's only bounds RSS.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PUBLISHERS: usize = 4;
const IN_FLIGHT: usize = 256;
/// Publishes submitted together (`Broker::submit_batch`), as the AMQP front end submits the
/// publishes of one socket read; `--batch 1` publishes one message per call (`Broker::publish`).
const BATCH: usize = 16;

struct Case {
    name: &'static str,
    kind: ExchangeKind,
    key: &'static str,
    binding_key: &'static str,
    binding_args: Headers,
    /// Each message's `region` is its own (`eu-<n>`), not `eu`: a batch router then decides
    /// once per message, not once per batch (its worst case).
    distinct: bool,
}

fn cases() -> Vec<Case> {
    let mut any = Headers::new();
    any.insert("x-match".into(), "any".into());
    any.insert("region".into(), "eu".into());
    vec![
        Case {
            name: "direct",
            kind: ExchangeKind::Direct,
            key: "k",
            binding_key: "k",
            binding_args: Headers::new(),
            distinct: false,
        },
        Case {
            name: "fanout",
            kind: ExchangeKind::Fanout,
            key: "",
            binding_key: "",
            binding_args: Headers::new(),
            distinct: false,
        },
        Case {
            name: "topic",
            kind: ExchangeKind::Topic,
            key: "orders.eu.new",
            binding_key: "orders.*.#",
            binding_args: Headers::new(),
            distinct: false,
        },
        Case {
            name: "headers",
            kind: ExchangeKind::Headers,
            key: "",
            binding_key: "",
            binding_args: any,
            distinct: false,
        },
        Case {
            name: "x-wasm (Rust header router)",
            kind: ExchangeKind::Wasm {
                plugin: "router".into(),
            },
            key: "",
            binding_key: "",
            binding_args: Headers::new(),
            distinct: false,
        },
        Case {
            name: "x-wasm, a region per message",
            kind: ExchangeKind::Wasm {
                plugin: "router".into(),
            },
            key: "",
            binding_key: "",
            binding_args: Headers::new(),
            distinct: true,
        },
        Case {
            name: "x-wasm, verdict cache on",
            kind: ExchangeKind::Wasm {
                plugin: CACHED_ROUTER.into(),
            },
            key: "",
            binding_key: "",
            binding_args: Headers::new(),
            distinct: false,
        },
    ]
}

/// The header router deployed with its verdict cache on (`switchyard.verdict-cache`): the same
/// plugin, called once per distinct `region` and spot-checked, instead of once per message.
const CACHED_ROUTER: &str = "cached-router";

fn open(dir: &std::path::Path, durability: Durability) -> Arc<Broker> {
    let config = BrokerConfig {
        queues: QueuesOptions {
            store: StoreConfig {
                durability,
                cache_capacity: 32 << 20,
                ..StoreConfig::default()
            },
            ..QueuesOptions::default()
        },
        ..BrokerConfig::default()
    };
    Arc::new(Broker::open(dir, config).expect("open broker"))
}

/// CPU time the runtime's worker threads have used so far: the scheduler's run time of every
/// thread named like tokio's workers (`/proc/self/task/*/schedstat`, nanoseconds). Zero where
/// `/proc` has no such file.
fn workers_cpu() -> std::time::Duration {
    let tasks = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten();
    let ns = tasks
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            comm.starts_with("tokio-rt-worker")
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    std::time::Duration::from_nanos(ns)
}

/// CPU time this process has used so far, all threads (publishers, routing, the flusher).
fn process_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One case's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rate: f64,
    /// Process CPU µs per message: workers, flusher, everything.
    cpu: f64,
    /// The runtime workers' CPU µs per message: what bounds the rate.
    workers: f64,
}

/// One case. CPU per message is the steadier figure on a shared VM, where throughput moves
/// with the machine's speed from run to run.
async fn run(
    case: &Case,
    durability: Durability,
    (warmup, messages): (usize, usize),
    batch: usize,
) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), durability);
    let queue = QueueName::new("bench").unwrap();
    broker
        .declare_queue(&queue, QueueConfig::default())
        .unwrap();
    if let ExchangeKind::Wasm { plugin } = &case.kind {
        let mut config: std::collections::BTreeMap<_, _> = [
            ("header".to_string(), "region".to_string()),
            ("route.eu".into(), "bench".into()),
            ("default".into(), "bench".into()),
        ]
        .into();
        if plugin == CACHED_ROUTER {
            config.insert(VERDICT_CACHE.into(), "on".into());
        }
        let opts = DeployOptions {
            config,
            ..DeployOptions::default()
        };
        broker
            .plugins()
            .deploy(plugin, &plugins::rust_plugin_bytes("header_router"), opts)
            .unwrap();
    }
    broker
        .declare_exchange(Exchange::new("bench", case.kind.clone()))
        .unwrap();
    if !matches!(case.kind, ExchangeKind::Wasm { .. }) {
        broker
            .bind(Binding {
                source: "bench".into(),
                target: BindingTarget::Queue("bench".into()),
                routing_key: case.binding_key.into(),
                arguments: case.binding_args.clone(),
                filter: None,
            })
            .unwrap();
    }
    let template = Message::new(vec![b'x'; 1024])
        .with_header("region", "eu")
        .with_header("customer", "c-1")
        .with_header("kind", "order")
        .with_header("priority", 3i64)
        .with_header("source", "bench");
    let warmed = publish_all(&broker, case, &template, warmup, batch).await;
    let (start, cpu, workers) = (Instant::now(), process_cpu(), workers_cpu());
    let messages = publish_all(&broker, case, &template, messages, batch).await;
    let rate = messages as f64 / start.elapsed().as_secs_f64();
    let per_msg = |d: std::time::Duration| d.as_secs_f64() * 1e6 / messages as f64;
    let (cpu, workers) = (
        per_msg(process_cpu() - cpu),
        per_msg(workers_cpu() - workers),
    );
    assert_eq!(
        broker.queues().stats(&queue).unwrap().messages,
        (warmed + messages) as u64
    );
    Figures { rate, cpu, workers }
}

/// Publishes `messages` copies of `template` (each with its own id, and its own `region` for a
/// `distinct` case) from [`PUBLISHERS`] tasks, [`IN_FLIGHT`] at most; returns once all are
/// confirmed, with how many there were (`messages` rounded down to a multiple of the tasks).
async fn publish_all(
    broker: &Arc<Broker>,
    case: &Case,
    template: &Message,
    messages: usize,
    batch: usize,
) -> usize {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let (broker, permits, template) = (broker.clone(), permits.clone(), template.clone());
        let (key, distinct) = (case.key, case.distinct);
        tasks.push(tokio::spawn(async move {
            let mut left = messages / PUBLISHERS;
            while left > 0 {
                let n = batch.min(left);
                left -= n;
                let permit = permits.clone().acquire_many_owned(n as u32).await.unwrap();
                let broker = broker.clone();
                let fresh = || {
                    let mut m = template.clone();
                    m.id = switchyard::message::MessageId::generate();
                    if distinct {
                        let region = format!("eu-{}", m.id.as_str());
                        m.headers.insert("region".into(), region.into());
                    }
                    m
                };
                // Not joined: a finished task's memory lives until its handle is dropped, and
                // kept handles cost the run ~4 KiB of fresh memory per message (800 MiB of
                // page faults at 200k messages). The semaphore says when all are done; the
                // queue's count below checks that each one stored its message.
                if batch == 1 {
                    let m = fresh();
                    tokio::spawn(async move {
                        let p = broker.publish("bench", key, m, false).await.unwrap();
                        assert_eq!(p.outcomes.len(), 1, "routed to exactly one queue");
                        drop(permit);
                    });
                    continue;
                }
                let publishes = (0..n)
                    .map(|_| Publish {
                        routing_key: key,
                        message: fresh(),
                        mandatory: false,
                    })
                    .collect();
                // As the AMQP front end confirms: each publish's confirmation, taken as soon as
                // it is applied, is awaited in order.
                tokio::spawn(async move {
                    let confirmations: Vec<_> = broker
                        .submit_batch("bench", publishes)
                        .await
                        .into_iter()
                        .map(|submitted| {
                            let submitted = submitted.unwrap();
                            let outputs = &submitted.decision().outputs;
                            assert_eq!(outputs.len(), 1, "routed to exactly one queue");
                            submitted.confirmation()
                        })
                        .collect();
                    for confirmation in confirmations {
                        assert!(confirmation.acked().await.unwrap(), "stored, not refused");
                    }
                    drop(permit);
                });
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let _all_done = permits.acquire_many(IN_FLIGHT as u32).await.unwrap();
    messages / PUBLISHERS * PUBLISHERS
}

/// The value after `name` on the command line, if there is one and it parses.
fn flag<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, as
    // a smoke test with a few messages.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let messages = flag("--messages").unwrap_or(if smoke { 400 } else { 40_000usize });
    let rounds: usize = flag("--rounds").unwrap_or(1);
    // Publishes before the clock starts, in every case alike: what a fresh broker does once
    // (a plugin instance's first calls touch its memory and code for the first time, the
    // store's first frames) is not its throughput.
    let warmup = flag("--warmup").unwrap_or(if smoke { 32 } else { 4_000usize });
    let counts = (warmup, messages);
    let batch: usize = flag("--batch").unwrap_or(BATCH).clamp(1, IN_FLIGHT);
    // The server's runtime shape (`worker_threads`' default), unless `--workers N` says.
    let workers = flag("--workers").unwrap_or_else(switchyard::config::default_worker_threads);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    // `--only <case> [--relaxed]`: one case, one figure: for a profiler, not for the table.
    if let Some(only) = flag::<String>("--only") {
        let durability = match std::env::args().any(|a| a == "--relaxed") {
            true => Durability::Relaxed,
            false => Durability::Fsync,
        };
        let Some(case) = cases().into_iter().find(|c| c.name.starts_with(&only)) else {
            panic!("no case named {only:?}: the names are those of the table's first column");
        };
        let f = rt.block_on(run(&case, durability, counts, batch));
        println!(
            "{} {durability:?}: {:.0} msg/s, {:.1} µs CPU/msg, workers {:.1} µs/msg",
            case.name, f.rate, f.cpu, f.workers
        );
        return;
    }
    // Rounds alternate every case, so a machine that gets busier or quieter during the run
    // moves every row alike; each round's ratio is against that round's `direct`.
    // `runs[d][c][round]`: durability `d`, case `c`.
    let durabilities = [Durability::Fsync, Durability::Relaxed];
    let n_cases = cases().len();
    let mut runs = vec![vec![Vec::new(); n_cases]; durabilities.len()];
    for _ in 0..rounds {
        for (d, &durability) in durabilities.iter().enumerate() {
            for (c, case) in cases().iter().enumerate() {
                runs[d][c].push(rt.block_on(run(case, durability, counts, batch)));
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("Batches of {batch} publishes.\n");
    println!(
        "| exchange | durability | msg/s (median of {rounds}) | vs direct (median of ratios) \
         | CPU µs/msg (median) | workers' CPU µs/msg (median) |"
    );
    println!("|---|---|---|---|---|---|");
    for (d, durability) in durabilities.iter().enumerate() {
        for (c, case) in cases().iter().enumerate() {
            let column = |f: fn(&Figures) -> f64| runs[d][c].iter().map(f).collect();
            let ratios = (0..rounds)
                .map(|r| runs[d][c][r].rate / runs[d][0][r].rate)
                .collect();
            println!(
                "| {} | {:?} | {:.0} | {:.0}% | {:.1} | {:.1} |",
                case.name,
                durability,
                median(column(|f| f.rate)),
                100.0 * median(ratios),
                median(column(|f| f.cpu)),
                median(column(|f| f.workers)),
            );
        }
    }
}
