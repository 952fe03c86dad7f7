//! Queue engine throughput next to raw sled, and RSS with a large backlog.
//!
//! `cargo bench --bench queue` runs the throughput table; `cargo bench --bench queue --
//! backlog 1000000` measures RSS with a backlog of that many 1 KiB messages.
//! Not a timed test: figures go to `docs/benchmarks.md`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::message::Message;
use switchyard::queue::{
    ConsumerOptions, Pending, PublishItem, QueueConfig, QueueName, Queues, QueuesOptions,
};
use switchyard::store::{Durability, StoreConfig};

const BODY: usize = 1024;
const PUBLISHERS: usize = 4;

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// The kernel's RSS high-water mark since the last [`reset_hwm`]: catches spikes that sampling
/// misses (a compaction's buffers live for milliseconds).
fn hwm_mib() -> f64 {
    status_mib("VmHWM:")
}

fn reset_hwm() {
    // "5" resets VmHWM to the current RSS (Linux >= 4.0); without it the mark covers the run.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Raw sled: 4 threads insert 1 KiB values while one thread flushes (and fsyncs) in a loop.
fn raw_sled(n: usize, fsync: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(32 << 20)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let file = std::fs::File::open(dir.path().join("db")).unwrap();
    let value = vec![7u8; BODY];
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let flusher = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                db.flush().unwrap();
                if fsync {
                    file.sync_all().unwrap();
                }
            }
        })
    };
    let threads: Vec<_> = (0..PUBLISHERS)
        .map(|t| {
            let (db, value) = (db.clone(), value.clone());
            std::thread::spawn(move || {
                for i in 0..n / PUBLISHERS {
                    let mut k = [0u8; 12];
                    k[..4].copy_from_slice(&(t as u32).to_be_bytes());
                    k[4..].copy_from_slice(&(i as u64).to_be_bytes());
                    db.insert(k, value.as_slice()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    flusher.join().unwrap();
    db.flush().unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

fn open(dir: &std::path::Path, durability: Durability) -> Queues {
    let opts = QueuesOptions {
        store: StoreConfig {
            durability,
            ..StoreConfig::default()
        },
        ..QueuesOptions::default()
    };
    Queues::open(dir, opts).unwrap()
}

/// publish -> deliver -> ack of `n` messages: 4 publishers with `window` publishes in flight
/// each (like AMQP publisher confirms), one consumer (prefetch 1000, acks every 100).
async fn engine(n: usize, durability: Durability, window: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), durability);
    let name = QueueName::new("bench").unwrap();
    q.declare(&name, QueueConfig::default()).unwrap();
    let opts = ConsumerOptions {
        prefetch: 1000,
        push: true,
    };
    let mut consumer = q.consume(&name, opts).unwrap();
    let start = Instant::now();
    let consume = tokio::spawn(async move {
        let mut seen = 0;
        while seen < n {
            let d = consumer.recv().await.unwrap();
            seen += 1;
            if seen % 100 == 0 || seen == n {
                consumer.ack(d.tag, true).unwrap();
            }
        }
    });
    let body = bytes::Bytes::from(vec![b'x'; BODY]);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (q, name, body) = (q.clone(), name.clone(), body.clone());
            tokio::spawn(async move {
                let mut inflight: VecDeque<Pending> = VecDeque::new();
                for _ in 0..n / PUBLISHERS {
                    let item = PublishItem::new(name.clone(), Message::new(body.clone()));
                    inflight.push_back(q.enqueue(vec![item]).unwrap());
                    if inflight.len() >= window {
                        inflight.pop_front().unwrap().durable().await.unwrap();
                    }
                }
                for p in inflight {
                    p.durable().await.unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    consume.await.unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

async fn backlog(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let before = rss_mib();
    let q = open(dir.path(), Durability::Relaxed);
    let name = QueueName::new("backlog").unwrap();
    q.declare(&name, QueueConfig::default()).unwrap();
    let body = bytes::Bytes::from(vec![b'x'; BODY]);
    let start = Instant::now();
    let mut peak: f64 = 0.0;
    reset_hwm();
    for i in 0..n {
        let item = PublishItem::new(name.clone(), Message::new(body.clone()));
        // As a publisher does: a relaxed publish is durable at once unless the store paces it.
        q.enqueue(vec![item]).unwrap().durable().await.unwrap();
        if i % 50_000 == 0 {
            peak = peak.max(rss_mib());
        }
    }
    let filled = rss_mib();
    peak = peak.max(filled);
    println!(
        "backlog: {n} x 1 KiB published in {:.1}s; RSS before open {before:.0} MiB, after fill {filled:.0} MiB, peak {peak:.0} MiB (high-water mark {:.0} MiB); disk {:.0} MiB",
        start.elapsed().as_secs_f64(),
        hwm_mib(),
        q.disk_bytes().unwrap() as f64 / (1 << 20) as f64
    );
    drop(q);
    let t = Instant::now();
    let q = open(dir.path(), Durability::Relaxed);
    println!(
        "backlog: reopen with {n} messages took {:.2}s, RSS {:.0} MiB",
        t.elapsed().as_secs_f64(),
        rss_mib()
    );
    let mut c = q
        .consume(
            &name,
            ConsumerOptions {
                prefetch: 1000,
                push: true,
            },
        )
        .unwrap();
    let t = Instant::now();
    reset_hwm();
    for i in 1..=n {
        let d = c.recv().await.unwrap();
        if i % 100 == 0 || i == n {
            c.ack(d.tag, true).unwrap();
        }
        if i % 50_000 == 0 {
            peak = peak.max(rss_mib());
        }
    }
    println!(
        "backlog: drained in {:.1}s; RSS after drain {:.0} MiB, peak overall {peak:.0} MiB, drain high-water mark {:.0} MiB",
        t.elapsed().as_secs_f64(),
        rss_mib(),
        hwm_mib()
    );
    // The compactor runs every 500 ms; give it a few rounds to return the drained segments.
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "backlog: disk 3 s after the drain {:.0} MiB",
        q.disk_bytes().unwrap() as f64 / (1 << 20) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "backlog") {
        let n = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        rt.block_on(backlog(n));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then a small smoke run is enough.
    let smoke = !args.iter().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 2_000 } else { 200_000 });
    println!("{n} messages of {BODY} B, {PUBLISHERS} publishers, 2 tokio workers");
    println!(
        "raw sled insert+flush+fsync : {:>9.0} msg/s",
        raw_sled(n, true)
    );
    println!(
        "raw sled insert+flush       : {:>9.0} msg/s",
        raw_sled(n, false)
    );
    for (label, d, w) in [
        ("engine relaxed, window 256  ", Durability::Relaxed, 256),
        ("engine fsync, window 256    ", Durability::Fsync, 256),
        ("engine fsync, window 1      ", Durability::Fsync, 1),
    ] {
        let n = if w == 1 { n / 10 } else { n };
        let rate = rt.block_on(engine(n, d, w));
        println!("{label}: {rate:>9.0} msg/s (publish->deliver->ack)");
        std::thread::sleep(Duration::from_millis(200));
    }
}
