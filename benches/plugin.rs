//! Plugin host benchmark (not a test): `cargo bench --bench plugin`.
//!
//! Prints a Markdown table: warm call cost of each example plugin (Rust, Python, JavaScript)
//! with a 1 KiB body and 5 headers, instantiation cost, compile and cached-load time, and
//! reload time (with the worst call latency seen by a concurrent caller during reloads).
//! Plugins are built first, like the tests do (Python/JS skipped when their tools are missing).

#[path = "../tests/all/support/plugins.rs"]
mod plugins;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::message::{FieldValue, Message};
use switchyard::plugin::{
    DeployOptions, HostConfig, PluginHost, PluginKind, PluginLimits, RouteContext, VERDICT_CACHE,
};

fn message(body: Vec<u8>) -> Message {
    let mut m = Message::new(body)
        .with_header("region", "eu")
        .with_header("tenant", "acme-corporation")
        .with_header("attempt", FieldValue::U16(1))
        .with_header("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736")
        .with_header("priority-class", FieldValue::Bool(true));
    m.properties.content_type = Some("application/json".into());
    m
}

/// A 1 KiB JSON order (exactly 1024 bytes).
fn order_body() -> Vec<u8> {
    let head = r#"{"id":"o-1","region":"eu","amount":1234.5,"customer":{"email":"a@b.c","name":"Ann"},"note":""#;
    let tail = r#""}"#;
    let pad = "x".repeat(1024 - head.len() - tail.len());
    let body = format!("{head}{pad}{tail}").into_bytes();
    assert_eq!(body.len(), 1024);
    body
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Mean and p99 of `f` over `n` calls after a warm-up.
/// Mean and p99 of `n` calls, each awaited in turn on one task (as the broker awaits plugin
/// calls on the publishing connection's task).
async fn time_calls(n: u32, mut f: impl AsyncFnMut()) -> (Duration, Duration) {
    for _ in 0..(n / 10).max(10) {
        f().await;
    }
    let mut samples = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    let mean = started.elapsed() / n;
    samples.sort();
    (
        mean,
        samples[(samples.len() * 99 / 100).min(samples.len() - 1)],
    )
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

struct Case {
    label: &'static str,
    wasm: Option<Vec<u8>>,
    config: BTreeMap<String, String>,
    body: Vec<u8>,
    iterations: u32,
}

/// `PLUGIN_BENCH_CALLS=N MODE=direct|fiber`: only N warm calls of the Rust header router with
/// a 1 KiB, 5-header message (or an empty one with `BODY=empty`), timed in thread CPU time as
/// well as wall time: on a machine too busy for wall-clock figures, the CPU time the calling
/// thread spent is what a call costs. `BATCH=K`: N calls of K messages each through the
/// `batch-router` path, figures per message.
fn calls_only(n: u32) {
    let direct = std::env::var("MODE").map_or(true, |m| m != "fiber");
    // A small pool: valgrind cannot reserve the default pool's address space.
    let host = PluginHost::in_memory(HostConfig {
        direct_calls: direct,
        max_instances: 8,
        memory_ceiling: 256 << 20,
        ..HostConfig::default()
    })
    .unwrap();
    let opts = DeployOptions {
        config: config(&[("header", "region"), ("route.eu", "orders.eu")]),
        ..Default::default()
    };
    host.deploy("hr", &plugins::rust_plugin_bytes("header_router"), opts)
        .unwrap();
    let msg = match std::env::var("BODY").as_deref() {
        Ok("empty") => Message::new(Vec::new()),
        _ => message(order_body()),
    };
    let ctx = RouteContext::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let batch: u32 = std::env::var("BATCH").map_or(1, |b| b.parse().unwrap());
    let (serving, items) = (
        host.serving("hr").unwrap(),
        vec![(&msg, &ctx); batch as usize],
    );
    let (wall, started) = (Instant::now(), cpu());
    rt.block_on(async {
        for _ in 0..n {
            match batch {
                1 => drop(std::hint::black_box(
                    host.route("hr", &msg, &ctx).await.unwrap(),
                )),
                _ => drop(std::hint::black_box(serving.route_batch(&items).unwrap())),
            }
        }
    });
    let messages = n * batch;
    let (cpu_per_call, wall_per_call) = ((cpu() - started) / messages, wall.elapsed() / messages);
    println!(
        "{n} calls of {batch}, direct: {}: {} thread CPU per message, {} wall",
        host.direct_calls("hr") == Some(true),
        us(cpu_per_call),
        us(wall_per_call)
    );
}

fn main() {
    if let Some(n) = std::env::var("PLUGIN_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        return calls_only(n);
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // as a smoke test: few iterations, no Python/JS (their debug-mode compiles take minutes).
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 1000 } else { 1 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hr_config = config(&[
        ("header", "region"),
        ("route.eu", "orders.eu"),
        ("default", "other"),
    ]);
    let hr_config_fibers = hr_config.clone();
    // The same routes, answered from the verdict cache after the first call: the figure is a
    // hit's cost (the message repeats), a spot check in every 1,024 calls included.
    let mut hr_cached = hr_config.clone();
    hr_cached.insert(VERDICT_CACHE.into(), "on".into());
    let read = |p: Option<std::path::PathBuf>| p.map(|p| std::fs::read(p).unwrap());
    let cases = vec![
        Case {
            label: "Rust header-router",
            wasm: Some(plugins::rust_plugin_bytes("header_router")),
            config: hr_config.clone(),
            body: order_body(),
            iterations: 200_000,
        },
        Case {
            label: "Rust header-router, verdict cache",
            wasm: Some(plugins::rust_plugin_bytes("header_router")),
            config: hr_cached.clone(),
            body: order_body(),
            iterations: 200_000,
        },
        Case {
            label: "Rust json-router",
            wasm: Some(plugins::rust_plugin_bytes("json_router")),
            config: BTreeMap::new(),
            body: order_body(),
            iterations: 50_000,
        },
        Case {
            label: "Rust redact-pii",
            wasm: Some(plugins::rust_plugin_bytes("redact_pii")),
            config: BTreeMap::new(),
            body: order_body(),
            iterations: 50_000,
        },
        Case {
            label: "Rust size-filter",
            wasm: Some(plugins::rust_plugin_bytes("size_filter")),
            config: config(&[("required", "id,region")]),
            body: order_body(),
            iterations: 100_000,
        },
        Case {
            label: "Python header-router",
            wasm: if quick {
                None
            } else {
                read(plugins::python_header_router())
            },
            config: hr_config.clone(),
            body: order_body(),
            iterations: 20_000,
        },
        Case {
            label: "Python view-router",
            wasm: if quick {
                None
            } else {
                read(plugins::python_view_router())
            },
            config: hr_config.clone(),
            body: order_body(),
            iterations: 20_000,
        },
        Case {
            label: "Python view-router, verdict cache",
            wasm: if quick {
                None
            } else {
                read(plugins::python_view_router())
            },
            config: hr_cached,
            body: order_body(),
            iterations: 200_000,
        },
        Case {
            label: "JS header-router",
            wasm: if quick {
                None
            } else {
                read(plugins::js_header_router())
            },
            config: hr_config,
            body: order_body(),
            iterations: 20_000,
        },
    ];
    let ctx = RouteContext {
        exchange: "orders".into(),
        routing_key: "new".into(),
        delivery_count: 0,
        source: "bench".into(),
    };
    let data = tempfile::tempdir().unwrap();
    // Deadlines are wall-clock; on a shared 2-core machine a preempted call can exceed 100 ms.
    let config_5s = HostConfig {
        default_limits: PluginLimits {
            timeout: Duration::from_secs(5),
            ..PluginLimits::default()
        },
        ..HostConfig::default()
    };
    let host = PluginHost::open(data.path(), config_5s.clone()).unwrap();

    println!("| plugin | size | calls | warm call mean | warm call p99 | instantiate | compile + load | cached load |");
    println!("|---|---|---|---|---|---|---|---|");
    for case in &cases {
        let Some(wasm) = &case.wasm else {
            println!(
                "| {} | skipped (tool not installed, or smoke run) | | | | | | |",
                case.label
            );
            continue;
        };
        let opts = DeployOptions {
            config: case.config.clone(),
            ..Default::default()
        };
        let name = case.label.replace(',', "").replace(' ', "-").to_lowercase();
        // Compile (cache miss) + type-check + first instance, on a disk-backed host.
        let t = Instant::now();
        host.deploy(&name, wasm, opts.clone()).unwrap();
        let compile = t.elapsed();
        // Cached load: same bytes under another name → artifact cache hit.
        let t = Instant::now();
        host.deploy(&format!("{name}-cached"), wasm, opts.clone())
            .unwrap();
        let cached = t.elapsed();
        let msg = message(case.body.clone());
        let kind = host.current(&name).unwrap().0;
        let (mean, p99) = rt.block_on(time_calls(case.iterations / scale, async || match kind {
            PluginKind::Router => drop(std::hint::black_box(
                host.route(&name, &msg, &ctx).await.unwrap(),
            )),
            PluginKind::Filter => drop(std::hint::black_box(
                host.filter(&name, &msg, &ctx).await.unwrap(),
            )),
            PluginKind::Transform => drop(std::hint::black_box(
                host.transform(&name, &msg, &ctx).await.unwrap(),
            )),
        }));
        let mode = if host.direct_calls(&name) == Some(true) {
            "direct"
        } else {
            "fiber"
        };
        let made = host.stats(&name).map_or(0, |s| s.instantiations);
        let inst_iters = if wasm.len() > 1 << 20 {
            20
        } else {
            500 / scale as u32 + 1
        };
        let inst = rt
            .block_on(host.measure_instantiation(&name, inst_iters))
            .unwrap();
        println!(
            "| {} | {} KB | {mode} ({made} instances) | {} | {} | {} | {} | {} |",
            case.label,
            wasm.len() / 1000,
            us(mean),
            us(p99),
            us(inst),
            ms(compile),
            ms(cached)
        );
    }

    // Fixed cost: the same router with an empty message (no headers, empty body, no
    // properties), to separate marshalling from the call itself.
    let empty = Message::new(Vec::new());
    let (mean, p99) = rt.block_on(time_calls(200_000 / scale, async || {
        drop(std::hint::black_box(
            host.route("rust-header-router", &empty, &ctx)
                .await
                .unwrap(),
        ))
    }));
    println!();
    println!(
        "Rust header-router, empty message: {} mean, {} p99.",
        us(mean),
        us(p99)
    );

    // The same router given 32 messages per call (`batch-router`), as the broker calls it for
    // the publishes of one socket read: the call's fixed cost shared by the batch.
    let serving = host.serving("rust-header-router").unwrap();
    let msg = message(order_body());
    let items = vec![(&msg, &ctx); 32];
    let (mean, _) = rt.block_on(time_calls(20_000 / scale, async || {
        let verdicts = serving
            .route_batch(&items)
            .expect("a batch router on its fast path");
        drop(std::hint::black_box(verdicts))
    }));
    println!(
        "Rust header-router, batches of 32 messages: {} per message ({} per call).",
        us(mean / 32),
        us(mean)
    );

    // The same router with direct calls off (every call on a fiber), to show what the direct
    // path saves.
    let fibers = PluginHost::in_memory(HostConfig {
        direct_calls: false,
        ..config_5s
    })
    .unwrap();
    fibers
        .deploy(
            "hr",
            &plugins::rust_plugin_bytes("header_router"),
            DeployOptions {
                config: hr_config_fibers,
                ..Default::default()
            },
        )
        .unwrap();
    for (label, msg) in [
        ("1 KiB, 5 headers", message(order_body())),
        ("empty", empty),
    ] {
        let (mean, p99) = rt.block_on(time_calls(200_000 / scale, async || {
            drop(std::hint::black_box(
                fibers.route("hr", &msg, &ctx).await.unwrap(),
            ))
        }));
        println!(
            "Rust header-router on fibers (direct calls off), {label}: {} mean, {} p99.",
            us(mean),
            us(p99)
        );
    }

    // Reload: deploy new versions (distinct bytes → real compiles) while a thread calls.
    let base = plugins::rust_plugin_bytes("test_echo_version");
    host.deploy(
        "reload",
        &base,
        DeployOptions {
            config: config(&[("version", "0")]),
            ..Default::default()
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (host, stop) = (host.clone(), stop.clone());
        let msg = message(order_body());
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (mut worst, mut calls) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                rt.block_on(host.route("reload", &msg, &ctx)).unwrap();
                worst = worst.max(t.elapsed());
                calls += 1;
            }
            (worst, calls)
        })
    };
    let reloads = if quick { 2 } else { 10 };
    let t = Instant::now();
    for i in 1..=reloads {
        let tag = i.to_string();
        let wasm =
            plugins::with_custom_section(&base, &format!("bench-{tag}-{}", std::process::id()));
        host.deploy(
            "reload",
            &wasm,
            DeployOptions {
                config: config(&[("version", &tag)]),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let reload = t.elapsed() / reloads;
    stop.store(true, Ordering::Relaxed);
    let (worst, calls) = caller.join().unwrap();
    println!();
    println!(
        "Reload (compile + type-check + instantiate + swap) of a Rust router: {} mean over {reloads}; \
         a concurrent caller made {calls} calls meanwhile, worst call {}.",
        ms(reload),
        us(worst)
    );
}
