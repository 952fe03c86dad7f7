//! Atomic fan-out under SIGKILL: a child process publishes through a fanout exchange to three
//! queues and prints each acknowledged id; the parent kills it at random moments, reopens the
//! broker and checks every acknowledged publish is in all three queues and no publish is in
//! only some of them.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use switchyard::broker::Broker;
use switchyard::routing::{Binding, BindingTarget, Exchange, ExchangeKind};
use switchyard::store::Durability;

use super::*;

const CHILD_ENV: &str = "SWITCHYARD_BROKER_CRASH_CHILD_DIR";
const TEST_NAME: &str = "broker::crash::sigkill_never_leaves_a_partial_fan_out";
const CYCLES: usize = 20;
const QUEUES: [&str; 3] = ["fan-a", "fan-b", "fan-c"];

fn open(dir: &std::path::Path) -> Broker {
    Broker::open(dir, config(Durability::Fsync)).expect("reopen after SIGKILL must succeed")
}

fn child(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let broker = Arc::new(open(std::path::Path::new(dir)));
        broker
            .declare_exchange(Exchange::new("fan", ExchangeKind::Fanout))
            .unwrap();
        for q in QUEUES {
            broker
                .declare_queue(&QueueName::new(q).unwrap(), QueueConfig::default())
                .unwrap();
            broker
                .bind(Binding {
                    source: "fan".into(),
                    target: BindingTarget::Queue(q.into()),
                    routing_key: String::new(),
                    arguments: Default::default(),
                    filter: None,
                })
                .unwrap();
        }
        let mut tasks = Vec::new();
        for t in 0..4 {
            let broker = broker.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let id = format!("{}-{t}-{i}", std::process::id());
                    let p = broker
                        .publish("fan", "", msg_id("payload", &id), false)
                        .await
                        .unwrap();
                    assert_eq!(p.outcomes.len(), 3);
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {id}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn sigkill_never_leaves_a_partial_fan_out() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut acked: Vec<String> = Vec::new();
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
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_owned))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        acked.extend(reader.join().unwrap());

        let broker = open(dir.path());
        let ids = |q: &str| -> HashSet<String> {
            let name = QueueName::new(q).unwrap();
            broker
                .queues()
                .embedded()
                .unwrap()
                .browse(&name, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|m| m.id.to_string())
                .collect()
        };
        let sets: Vec<HashSet<String>> = QUEUES.iter().map(|q| ids(q)).collect();
        for id in &acked {
            for (q, set) in QUEUES.iter().zip(&sets) {
                assert!(
                    set.contains(id),
                    "cycle {cycle}: acknowledged {id} missing from {q}"
                );
            }
        }
        assert!(
            sets[0] == sets[1] && sets[1] == sets[2],
            "cycle {cycle}: partial fan-out"
        );
    }
    assert!(
        acked.len() > 50,
        "the child published too little: {}",
        acked.len()
    );
    eprintln!(
        "broker crash test: {CYCLES} SIGKILLs, {} acknowledged fan-outs checked",
        acked.len()
    );
}
