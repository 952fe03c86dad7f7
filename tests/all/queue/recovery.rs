//! Restart recovery and bad data directories.

use std::path::Path;

use switchyard::queue::{QueueConfig, QueueError, Queues, RetryPolicy};
use switchyard::store::{Durability, StoreError};

use super::common::*;

#[tokio::test]
async fn restart_recovers_queues_and_returns_in_flight_as_redelivered() {
    let mut env = Env::new();
    let config = QueueConfig {
        max_deliveries: Some(5),
        retry: RetryPolicy::Fixed { delay_ms: 10 },
        ..QueueConfig::default()
    };
    let q = env.declare("work", config.clone());
    for i in 1..=3 {
        env.publish(&q, &format!("m{i}")).await;
    }
    let c = env.puller(&q);
    let d = c.get().unwrap().unwrap();
    assert!(!d.redelivered);
    drop(c);
    env.restart();
    assert_eq!(env.q().config(&q).unwrap(), config);
    assert_eq!(env.q().stats(&q).unwrap().messages, 3);
    let c = env.puller(&q);
    let d = c.get().unwrap().unwrap();
    assert_eq!(body(&d.message), "m1");
    assert!(d.redelivered);
    assert_eq!(d.delivery_count, 2);
    let d2 = c.get().unwrap().unwrap();
    assert!(!d2.redelivered);
    // Acks survive a restart; seqs keep growing.
    c.ack(d2.tag, false).unwrap();
    drop(c);
    env.restart();
    assert_eq!(env.bodies(&q), ["m1", "m3"]);
    let seq = env.publish(&q, "m4").await;
    assert_eq!(seq, switchyard::queue::PublishOutcome::Enqueued { seq: 4 });
}

#[tokio::test]
async fn retry_delay_survives_restart() {
    let mut env = Env::new();
    let q = env.declare(
        "work",
        QueueConfig {
            retry: RetryPolicy::Fixed { delay_ms: 1000 },
            ..QueueConfig::default()
        },
    );
    env.publish(&q, "m1").await;
    let c = env.puller(&q);
    let d = c.get().unwrap().unwrap();
    c.nack(d.tag, false, true).unwrap();
    drop(c);
    env.restart();
    let c = env.puller(&q);
    env.advance(999);
    assert!(c.get().unwrap().is_none());
    env.advance(1);
    assert_eq!(c.get().unwrap().unwrap().delivery_count, 2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A crash while a message is in flight: the copy of the directory (taken after a flush, with
/// the consumer still holding the message) is what a SIGKILL would leave behind.
#[tokio::test]
async fn in_flight_at_crash_is_redelivered() {
    let env = Env::new();
    let q = env.declare("work", QueueConfig::default());
    let sync = env.declare(
        "sync",
        QueueConfig {
            durability: Some(Durability::Fsync),
            ..QueueConfig::default()
        },
    );
    env.publish(&q, "m1").await;
    env.publish(&q, "m2").await;
    let c = env.puller(&q);
    let d = c.get().unwrap().unwrap();
    assert!(!d.redelivered);
    env.publish(&sync, "flush").await; // waits for a group commit covering the delivery
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(env.dir.path(), crashed.path());
    let q2 = Queues::open(
        crashed.path(),
        options(env.clock.clone(), Durability::Relaxed),
    )
    .unwrap();
    let c2 = q2
        .consume(
            &q,
            switchyard::queue::ConsumerOptions {
                prefetch: 0,
                push: false,
            },
        )
        .unwrap();
    let again = c2.get().unwrap().unwrap();
    assert_eq!(body(&again.message), "m1");
    assert!(again.redelivered, "delivered before the crash");
    assert_eq!(
        again.delivery_count, 1,
        "the crashed delivery was not counted"
    );
    assert!(!c2.get().unwrap().unwrap().redelivered);
}

#[test]
fn bad_data_directories_are_refused_and_left_alone() {
    let clock = std::sync::Arc::new(switchyard::queue::ManualClock::new(T0));
    let opts = || options(clock.clone(), Durability::Fsync);

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("postgresql.conf"), b"x").unwrap();
    let err = Queues::open(foreign.path(), opts()).unwrap_err();
    assert!(
        matches!(err, QueueError::Store(StoreError::Foreign { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("FORMAT"), "{err}");
    assert_eq!(std::fs::read_dir(foreign.path()).unwrap().count(), 1);

    // A damaged database: our files, garbage content.
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queues::open(dir.path(), opts()).unwrap();
        q.declare(&name("keep"), QueueConfig::default()).unwrap();
    }
    let db = dir.path().join("sled").join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0xA5u8; len.max(4096)]).unwrap();
    let err = Queues::open(dir.path(), opts()).unwrap_err();
    assert!(matches!(err, QueueError::Store(_)), "{err}");
    assert!(
        std::fs::read(&db).unwrap().iter().all(|&b| b == 0xA5),
        "never reset"
    );

    // Marker without a database but with other files: damaged, not silently recreated.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(switchyard::store::MARKER),
        format!("{}\n", switchyard::store::FORMAT),
    )
    .unwrap();
    std::fs::write(dir.path().join("stray"), b"x").unwrap();
    let err = Queues::open(dir.path(), opts()).unwrap_err();
    assert!(
        matches!(err, QueueError::Store(StoreError::Corrupt { .. })),
        "{err}"
    );
}
