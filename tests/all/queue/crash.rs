//! Crash test in the style of sled's `tests/test_crash_recovery.rs`: a child process (this
//! test binary, re-executed with an environment variable) publishes as fast as it can and
//! prints each acknowledged message id; the parent SIGKILLs it at random moments, reopens the
//! store and checks that every acknowledged id is there.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard::queue::{PublishItem, QueueConfig, Queues, QueuesOptions};
use switchyard::store::{Durability, StoreConfig};

use super::common::*;

const CHILD_ENV: &str = "SWITCHYARD_CRASH_CHILD_DIR";
const TEST_NAME: &str = "queue::crash::sigkill_never_loses_an_acknowledged_publish";
const CYCLES: usize = 40;

fn open(dir: &std::path::Path) -> Queues {
    let opts = QueuesOptions {
        store: StoreConfig {
            durability: Durability::Fsync,
            cache_capacity: 16 * 1024 * 1024,
            ..StoreConfig::default()
        },
        ..QueuesOptions::default()
    };
    Queues::open(dir, opts).expect("reopen after SIGKILL must succeed")
}

/// Child role: publish from 4 tasks, several messages in flight each; print acked ids.
fn child(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let q = open(std::path::Path::new(dir));
        let main = name("crash");
        let fan = name("crash-fan");
        q.declare(&main, QueueConfig::default()).unwrap();
        q.declare(&fan, QueueConfig::default()).unwrap();
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let (q, main, fan, out) = (q.clone(), main.clone(), fan.clone(), out.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let m =
                        msg(&"x".repeat(256)).with_id(format!("{}-{t}-{i}", std::process::id()));
                    let id = m.id.to_string();
                    // Every other publish is a fan-out to two queues in one batch.
                    let mut items = vec![PublishItem::new(main.clone(), m.clone())];
                    if i % 2 == 0 {
                        items.push(PublishItem::new(fan.clone(), m));
                    }
                    q.publish_batch(items).await.unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {id} {}", i % 2 == 0).unwrap();
                    o.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn sigkill_never_loses_an_acknowledged_publish() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acked: Vec<(String, bool)> = Vec::new();
    let started = Instant::now();
    // Declared up front: a child killed before its own (idempotent) declarations finish must
    // not leave the parent without the queues it checks.
    {
        let q = open(dir.path());
        q.declare(&name("crash"), QueueConfig::default()).unwrap();
        q.declare(&name("crash-fan"), QueueConfig::default())
            .unwrap();
    }
    for cycle in 0..CYCLES {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut parts = l.strip_prefix("ACK ")?.split(' ');
                    Some((parts.next()?.to_owned(), parts.next()? == "true"))
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(30..500)));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        let got = reader.join().unwrap();
        acked.extend(got);

        let q = open(dir.path());
        let main: HashSet<String> = q
            .browse(&name("crash"), usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| m.id.to_string())
            .collect();
        let fan: HashSet<String> = q
            .browse(&name("crash-fan"), usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| m.id.to_string())
            .collect();
        for (id, fanned) in &acked {
            assert!(main.contains(id), "cycle {cycle}: acknowledged {id} lost");
            if *fanned {
                assert!(fan.contains(id), "cycle {cycle}: fan-out copy of {id} lost");
            }
        }
        // Atomic fan-out: every fan copy has its main copy.
        assert!(fan.iter().all(|id| main.contains(id)), "torn fan-out batch");
        drop(q);
    }
    assert!(
        acked.len() > 100,
        "the child published too little: {}",
        acked.len()
    );
    eprintln!(
        "crash test: {CYCLES} SIGKILLs, {} acknowledged publishes checked in {:?}",
        acked.len(),
        started.elapsed()
    );
}
