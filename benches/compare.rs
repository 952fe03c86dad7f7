//! Switchyard side by side with RabbitMQ and NATS JetStream on identical workloads (issue 7).
//!
//! `cargo bench --bench compare [-- --quick] [-- --reps N] [-- --only a,b] [-- --json PATH]
//! [-- --client wire|lapin]`.
//! Brokers: Switchyard in `fsync` and in `relaxed` durability (a child process of
//! `target/release/switchyard`, fresh data directory and free ports per repetition),
//! RabbitMQ at 127.0.0.1:5672 (guest/guest) and NATS JetStream at 127.0.0.1:4222, both already
//! running. Repetitions alternate between brokers. A broker that cannot be reached is reported
//! as absent and skipped. Workloads and phases are in `compare/phases.rs` and `compare/flow.rs`;
//! results, how to read them and what bounds them are in `docs/benchmarks.md`.
//!
//! AMQP brokers are driven through the lean `wire` client (one task per connection, see
//! `compare/wire.rs`) or, with `--client lapin`, through lapin.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) a smoke run of a few hundred
//! messages per phase, with Switchyard in this process, one repetition through each AMQP
//! client: it checks the harness works, its figures mean nothing. Never a timed assertion.

#[path = "../tests/all/support/plugins.rs"]
mod plugins;

#[path = "compare/amqp.rs"]
mod amqp;
#[path = "compare/consuming.rs"]
mod consuming;
#[path = "compare/flow.rs"]
mod flow;
#[path = "compare/meter.rs"]
mod meter;
#[path = "compare/nats.rs"]
mod nats;
#[path = "compare/phases.rs"]
mod phases;
#[path = "compare/procfs.rs"]
mod procfs;
#[path = "compare/readyz.rs"]
mod readyz;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/switchyard.rs"]
mod switchyard_broker;
#[path = "compare/wire.rs"]
mod wire;
#[path = "compare/wire_driver.rs"]
mod wire_driver;

use std::path::PathBuf;

use amqp::{Amqp, Client, Flavor};
use meter::Watched;
use nats::Nats;
use phases::{Disk, Driver, PhaseResult, Sizes, Target};
use switchyard_broker::{Plugins, Switchyard};

const RABBITMQ_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const RABBITMQ_DIR: &str = "/var/lib/rabbitmq/mnesia";
const NATS_URL: &str = "nats://127.0.0.1:4222";
const BROKERS: [&str; 4] = ["switchyard-fsync", "switchyard-relaxed", "rabbitmq", "nats"];

#[derive(Debug)]
struct Options {
    smoke: bool,
    quick: bool,
    reps: usize,
    only: Vec<String>,
    json: PathBuf,
    binary: Option<PathBuf>,
    /// AMQP clients, taken in turn by repetition: the one asked for, or in the smoke run
    /// both (so `cargo test` covers each).
    clients: Vec<Client>,
}

/// `target/<profile>/` of this bench executable (`target/<profile>/deps/compare-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let smoke = !args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let reps = value("--reps")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke {
            2
        } else if quick {
            1
        } else {
            3
        });
    let only = value("--only")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| BROKERS.iter().map(|b| b.to_string()).collect());
    let json = value("--json")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("compare-results.json"));
    // The smoke run serves Switchyard in process: it must not depend on a prebuilt binary.
    let binary = (!smoke).then(|| {
        value("--binary")
            .map(PathBuf::from)
            .unwrap_or_else(|| profile_dir().join("switchyard"))
    });
    let clients = match value("--client").as_deref() {
        None if smoke => vec![Client::Wire, Client::Lapin],
        None | Some("wire") => vec![Client::Wire],
        Some("lapin") => vec![Client::Lapin],
        Some(other) => {
            eprintln!("compare: unknown --client {other:?}: use wire (the default) or lapin");
            std::process::exit(2);
        }
    };
    Options {
        smoke,
        quick,
        reps,
        only,
        json,
        binary,
        clients,
    }
}

fn sizes(o: &Options) -> Sizes {
    if o.smoke {
        Sizes {
            backlog: 300,
            end_to_end: 300,
            latency_secs: 0.2,
            fan_out: 200,
            competing: 300,
            json: 100,
        }
    } else if o.quick {
        Sizes {
            backlog: 10_000,
            end_to_end: 10_000,
            latency_secs: 2.0,
            fan_out: 5_000,
            competing: 10_000,
            json: 3_000,
        }
    } else {
        Sizes {
            backlog: 100_000,
            end_to_end: 100_000,
            latency_secs: 10.0,
            fan_out: 50_000,
            competing: 100_000,
            json: 30_000,
        }
    }
}

/// Why a broker cannot be measured.
#[derive(Debug)]
enum Unavailable {
    /// Not running, not reachable, not built: reported and skipped.
    Absent(anyhow::Error),
    /// Reachable but it failed to start or set up: a failure of the run.
    Failed(anyhow::Error),
}

/// Starts or connects to `broker` and sets up its topology.
async fn target(
    broker: &str,
    o: &Options,
    client: Client,
    plugins: &Plugins,
) -> Result<(Target, Option<Switchyard>), Unavailable> {
    use Unavailable::{Absent, Failed};
    match broker {
        "switchyard-fsync" | "switchyard-relaxed" => {
            let durability = broker.trim_start_matches("switchyard-");
            if let Some(b) = o.binary.as_ref().filter(|b| !b.is_file()) {
                return Err(Absent(anyhow::anyhow!(
                    "{} missing: run `cargo build --release --bin switchyard` (or pass --binary)",
                    b.display()
                )));
            }
            let (bin, p) = (o.binary.clone(), plugins.clone());
            let d = durability.to_string();
            let server =
                tokio::task::spawn_blocking(move || Switchyard::start(bin.as_deref(), &d, &p))
                    .await
                    .map_err(|e| Failed(e.into()))?
                    .map_err(Failed)?;
            let driver = Driver::Amqp(
                Amqp::connect(&server.uri(), Flavor::Switchyard, client)
                    .await
                    .map_err(Failed)?,
            );
            let target = Target {
                label: broker.into(),
                driver,
                watched: Watched {
                    pid: Some(server.pid()),
                    own: server.is_child(),
                },
                disk: Disk::Dir(server.data_dir()),
            };
            Ok((target, Some(server)))
        }
        "rabbitmq" => {
            let amqp = Amqp::connect(RABBITMQ_URI, Flavor::RabbitMq, client)
                .await
                .map_err(Absent)?;
            amqp.setup().await.map_err(Failed)?;
            let dir = PathBuf::from(RABBITMQ_DIR);
            let disk = if procfs::dir_bytes(&dir).is_some() {
                Disk::Dir(dir)
            } else {
                Disk::None
            };
            let target = Target {
                label: broker.into(),
                driver: Driver::Amqp(amqp),
                watched: Watched {
                    pid: procfs::find_process("beam.smp"),
                    own: false,
                },
                disk,
            };
            Ok((target, None))
        }
        "nats" => {
            let nats = Nats::connect(NATS_URL).await.map_err(Absent)?;
            nats.setup().await.map_err(Failed)?;
            let target = Target {
                label: broker.into(),
                driver: Driver::Nats(nats),
                watched: Watched {
                    pid: procfs::find_process("nats-server"),
                    own: false,
                },
                disk: Disk::Streams,
            };
            Ok((target, None))
        }
        other => Err(Failed(anyhow::anyhow!(
            "unknown broker {other:?} (known: {})",
            BROKERS.join(", ")
        ))),
    }
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    serde_json::json!({"cpu_model": model, "cpus": cpus, "loadavg_at_end": load.trim()})
}

fn main() {
    let o = options();
    let sizes = sizes(&o);
    let mode = if o.smoke {
        "smoke (Switchyard in process: figures mean nothing)"
    } else if o.quick {
        "quick"
    } else {
        "full"
    };
    println!(
        "compare: {mode}, {} repetition(s), AMQP client {:?}, {sizes:?}",
        o.reps, o.clients
    );
    if let Some(b) = &o.binary {
        println!("compare: switchyard binary {}", b.display());
    }
    let plugins = Plugins {
        header_router: plugins::rust_plugin("header_router"),
        json_router: plugins::rust_plugin("json_router"),
    };
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results: Vec<PhaseResult> = Vec::new();
    let mut absent: Vec<(String, String)> = Vec::new();
    let mut failed_brokers: Vec<(String, String)> = Vec::new();
    for rep in 0..o.reps {
        for broker in &o.only {
            if absent.iter().any(|(a, _)| a == broker) {
                continue;
            }
            let client = o.clients[rep % o.clients.len()];
            let started = runtime.block_on(target(broker, &o, client, &plugins));
            let (t, server) = match started {
                Ok(t) => t,
                Err(Unavailable::Absent(e)) => {
                    println!("compare: {broker} ABSENT, skipped: {e:#}");
                    absent.push((broker.clone(), format!("{e:#}")));
                    continue;
                }
                Err(Unavailable::Failed(e)) => {
                    println!("compare: {broker} FAILED to start or set up: {e:#}");
                    failed_brokers.push((broker.clone(), format!("{e:#}")));
                    continue;
                }
            };
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let client = if broker == "nats" {
                "async-nats".to_string()
            } else {
                format!("AMQP client {client:?}")
            };
            println!(
                "compare: repetition {} on {broker}, {client} (load average {})",
                rep + 1,
                load.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            runtime.block_on(t.run(rep, &sizes, &mut |r: PhaseResult| {
                let rate = r.messages as f64 / r.secs;
                match &r.error {
                    None => println!(
                        "  {:<24} {:<16} {:>9.0} msg/s  broker {:>6.1} µs/msg  client {:>6.1} µs/msg",
                        r.workload,
                        r.phase,
                        rate,
                        r.broker_cpu_s.unwrap_or(f64::NAN) * 1e6 / r.messages as f64,
                        r.client_cpu_s * 1e6 / r.messages as f64
                    ),
                    Some(e) => println!("  {:<24} {:<16} FAILED: {e}", r.workload, r.phase),
                }
                results.push(r);
            }));
            if let Driver::Amqp(a) = t.driver {
                runtime.block_on(a.close());
            }
            drop(server);
        }
    }
    println!("\n{}", report::markdown(&results));
    println!(
        "Targets of issue 7 (same run, same machine):\n\n{}",
        report::targets(&results)
    );
    for (broker, why) in &absent {
        println!("ABSENT: {broker}: {why}");
    }
    for (broker, why) in &failed_brokers {
        println!("FAILED: {broker}: {why}");
    }
    let context = serde_json::json!({
        "mode": mode,
        "reps": o.reps,
        "amqp_clients": o.clients.iter().map(|c| format!("{c:?}").to_lowercase()).collect::<Vec<_>>(),
        "sizes": format!("{sizes:?}"),
        "machine": machine(),
        "loadavg_at_start": load_at_start.trim(),
        "absent": absent.iter().map(|(b, w)| serde_json::json!({"broker": b, "why": w})).collect::<Vec<_>>(),
        "failed": failed_brokers.iter().map(|(b, w)| serde_json::json!({"broker": b, "why": w})).collect::<Vec<_>>(),
    });
    let doc = report::json(&results, context);
    match std::fs::write(
        &o.json,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    ) {
        Ok(()) => println!("compare: JSON written to {}", o.json.display()),
        Err(e) => println!("compare: cannot write {}: {e}", o.json.display()),
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count() + failed_brokers.len();
    let switchyard_absent = absent.iter().any(|(b, _)| b.starts_with("switchyard"));
    if failed > 0 || switchyard_absent {
        eprintln!("compare: {failed} failure(s); Switchyard absent: {switchyard_absent}");
        std::process::exit(1);
    }
}
