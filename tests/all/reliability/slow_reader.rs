//! A client that stops reading its socket while its queue has a large backlog: the broker
//! must not buffer the backlog for it (its RSS stays bounded), and other clients keep their
//! pace. The stalled client consumes with `no-ack` — the worst case, since nothing waits
//! for its acks: only the bounded outbound queue and TCP's buffers hold the broker back.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};

use super::process::{self, connect, Serve};
use super::proxy::Proxy;

const BACKLOG: usize = 40_000;
const BODY: usize = 4096;
const ROUND_TRIPS: usize = 1_000;
/// Allowed growth of the broker's RSS while the stalled client's queue holds
/// `BACKLOG * BODY` (160 MiB): far below what buffering the backlog would cost.
const RSS_BOUND: u64 = 48 << 20;

async fn publish_confirmed(ch: &Channel, queue: &str, n: usize, body: &[u8]) {
    let mut window = Vec::new();
    for _ in 0..n {
        window.push(
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap(),
        );
        if window.len() == 256 {
            for c in window.drain(..) {
                assert!(matches!(c.await.unwrap(), Confirmation::Ack(_)));
            }
        }
    }
    for c in window {
        assert!(matches!(c.await.unwrap(), Confirmation::Ack(_)));
    }
}

/// Publish and consume `ROUND_TRIPS` messages one at a time on `queue`; the time it took.
async fn round_trips(uri: &str, queue: &str) -> Duration {
    let conn = connect(uri).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        let body = format!("rt {i}");
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("round trip within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(d.data, body.as_bytes());
    }
    let took = started.elapsed();
    let _ = conn.close(200, "bye".into()).await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_costs_bounded_memory_and_slows_nobody() {
    let (_work, data) = process::data_dir();
    let serve = Serve::start(&data, &[]);
    let conn = serve.connect().await;
    let ch = conn.create_channel().await.unwrap();
    for q in ["backlog", "other"] {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish_confirmed(&ch, "backlog", BACKLOG, &vec![b'b'; BODY]).await;
    let before = round_trips(&serve.amqp, "other").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = serve.rss_bytes();

    // The stalled client: consumes through a proxy that stops reading after the first
    // deliveries arrived.
    let addr = serve
        .amqp
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .parse()
        .unwrap();
    let proxy = Proxy::start(addr, None).await;
    let slow = connect(&proxy.uri()).await;
    let sch = slow.create_channel().await.unwrap();
    let mut sc = sch
        .basic_consume(
            "backlog".into(),
            "slow".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(10), sc.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    proxy.stall();
    let mut rss_max = serve.rss_bytes();
    let during = round_trips(&serve.amqp, "other").await;
    for _ in 0..20 {
        rss_max = rss_max.max(serve.rss_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = ch
        .queue_declare(
            "backlog".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count() as usize;
    let growth = rss_max.saturating_sub(rss_before);
    assert!(
        growth < RSS_BOUND,
        "the broker grew by {} MiB for a client that does not read",
        growth >> 20
    );
    assert!(
        left > BACKLOG / 2,
        "the broker took {} messages off the queue for a client that does not read",
        BACKLOG - left
    );
    assert!(
        during < before * 3 + Duration::from_secs(2),
        "other clients slowed down: {ROUND_TRIPS} round trips took {before:?} before, {during:?} during the stall"
    );
    proxy.cut();
    drop(slow);
    let _ = conn.close(200, "bye".into()).await;
    serve.stop();
    eprintln!(
        "slow reader: backlog {BACKLOG} × {BODY} B; RSS {} MiB before, at most {} MiB while the \
         client did not read (+{} MiB, bound {} MiB); {} messages taken off the queue for it; \
         {ROUND_TRIPS} round trips of another client took {before:.2?} before, {during:.2?} during",
        rss_before >> 20,
        rss_max >> 20,
        growth >> 20,
        RSS_BOUND >> 20,
        BACKLOG - left
    );
}
