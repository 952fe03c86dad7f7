//! Relaxed publishers are paced by the disk: once more than `max_unflushed_bytes` wait for a
//! flush, a publish's `Pending` says so, and its `durable()` waits for a flush that writes them.
//! Without this, a publisher faster than the disk grew the process's memory without bound.

use std::sync::Arc;
use std::time::Duration;

use switchyard::message::Message;
use switchyard::queue::{ManualClock, PublishItem, QueueConfig, QueueName, Queues};
use switchyard::store::Durability;

use super::common::{options, T0};

#[tokio::test]
async fn relaxed_publishes_wait_for_a_flush_once_too_much_is_unflushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(Arc::new(ManualClock::new(T0)), Durability::Relaxed);
    // The flusher writes relaxed frames within 5 ms by itself; a minute lets them pile up until
    // pacing asks for a flush.
    opts.store.relaxed_flush_interval = Duration::from_secs(60);
    opts.store.max_unflushed_bytes = 64 << 10;
    let q = Queues::open(dir.path(), opts).unwrap();
    let name = QueueName::new("paced").unwrap();
    q.declare(&name, QueueConfig::default()).unwrap();
    let publish = || {
        let item = PublishItem::new(name.clone(), Message::new(vec![7u8; 1024]));
        q.enqueue(vec![item]).unwrap()
    };

    let mut n = 0u64;
    let paced = loop {
        let p = publish();
        n += 1;
        if p.paced() {
            break p;
        }
        assert!(
            n < 200,
            "64 KiB of 1 KiB messages were never paced ({n} publishes)"
        );
        // Not paced: relaxed, so durable() returns at once.
        tokio::time::timeout(Duration::from_secs(1), p.durable())
            .await
            .expect("an unpaced relaxed publish waited")
            .unwrap();
    };
    assert!(
        (32..=65).contains(&n),
        "paced after {n} publishes of 1 KiB with a 64 KiB limit"
    );
    tokio::time::timeout(Duration::from_secs(10), paced.durable())
        .await
        .expect("the flush a paced publish waits for never came")
        .unwrap();
    // That flush wrote everything: the next publish goes through unpaced.
    assert!(!publish().paced(), "still paced after a flush");
    assert_eq!(q.stats(&name).unwrap().messages, n + 1);
}
