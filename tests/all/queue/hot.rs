//! Messages handed over decoded (the hot path: a consumer at its prefetch limit is served from
//! the publish's own copy when an ack frees credit) are the messages stored, and the queue's
//! rules (TTL, max-length) still apply to them.

use switchyard::message::{FieldValue, Message};
use switchyard::queue::{EnqueueOptions, Overflow, QueueConfig};

use super::common::*;

fn rich(i: i64) -> Message {
    let mut m = msg(&format!("m{i}"))
        .with_id(format!("id-{i}"))
        .with_header("x-n", FieldValue::from(i))
        .with_header("x-tag", FieldValue::from("hot"));
    m.properties.correlation_id = Some(format!("c-{i}"));
    m
}

#[tokio::test]
async fn a_consumer_at_its_limit_gets_the_newest_messages_as_stored() {
    let env = Env::new();
    let q = env.declare("work", QueueConfig::default());
    let mut c = env.q().consume(&q, push(1)).unwrap();
    for i in 1..=5 {
        let o = EnqueueOptions {
            exchange: "ex".into(),
            routing_keys: vec![format!("k{i}")],
            ..EnqueueOptions::default()
        };
        env.q().publish(&q, rich(i), o).await.unwrap();
    }
    // m2..m5 wait behind m1; each ack hands over the next.
    let mut got = Vec::new();
    for _ in 1..=5 {
        let d = drain(&mut c);
        assert_eq!(d.len(), 1, "prefetch 1");
        c.ack(d[0].tag, false).unwrap();
        got.push(d.into_iter().next().unwrap());
    }
    for (i, d) in (1..=5).zip(&got) {
        assert_eq!(d.message, rich(i), "message {i} as published");
        assert_eq!(
            (d.exchange.as_str(), &d.routing_keys[..]),
            ("ex", &[format!("k{i}")][..])
        );
        assert!(!d.redelivered && d.delivery_count == 1);
    }
    assert!(drain(&mut c).is_empty());
    assert_eq!(env.q().stats(&q).unwrap().messages, 0);
}

#[tokio::test]
async fn a_waiting_message_that_expired_is_dead_lettered_not_delivered() {
    let env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "work",
        QueueConfig {
            message_ttl_ms: Some(100),
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    let mut c = env.q().consume(&q, push(1)).unwrap();
    env.publish(&q, "first").await;
    env.publish(&q, "waits").await;
    let d = drain(&mut c);
    assert_eq!(dbodies(&d), ["first"]);
    // No timer tick: the expiry is found when the ack makes room.
    env.clock.advance(std::time::Duration::from_millis(150));
    c.ack(d[0].tag, false).unwrap();
    assert!(
        drain(&mut c).is_empty(),
        "an expired message is never delivered"
    );
    assert_eq!(env.bodies(&dlq), ["waits"]);
}

#[tokio::test]
async fn a_waiting_message_dropped_for_max_length_is_not_delivered() {
    let env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "small",
        QueueConfig {
            max_length: Some(2),
            overflow: Overflow::DropHead,
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    let mut c = env.q().consume(&q, push(1)).unwrap();
    for i in 1..=4 {
        env.publish(&q, &format!("m{i}")).await;
    }
    // m1 in flight; m2 was the head when m4 arrived.
    assert_eq!(env.bodies(&dlq), ["m2"]);
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = drain(&mut c);
        c.ack(d[0].tag, false).unwrap();
        got.extend(dbodies(&d));
    }
    assert_eq!(got, ["m1", "m3", "m4"]);
}
