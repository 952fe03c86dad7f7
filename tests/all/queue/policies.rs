//! Each policy with injected time: retry schedules, dead-letter reasons, TTL, max-length,
//! dedup, scheduled delivery, redrive.

use switchyard::message::FieldValue;
use switchyard::queue::{
    EnqueueOptions, Overflow, PublishItem, PublishOutcome, QueueConfig, RetryPolicy,
};

use super::common::*;

#[tokio::test]
async fn fixed_retry_delay_does_not_block_the_head() {
    let env = Env::new();
    let q = env.declare(
        "work",
        QueueConfig {
            retry: RetryPolicy::Fixed { delay_ms: 1000 },
            ..QueueConfig::default()
        },
    );
    env.publish(&q, "m1").await;
    env.publish(&q, "m2").await;
    let c = env.puller(&q);
    let d1 = c.get().unwrap().unwrap();
    c.nack(d1.tag, false, true).unwrap();
    let d2 = c.get().unwrap().unwrap();
    assert_eq!(body(&d2.message), "m2", "the delayed m1 must not block m2");
    c.ack(d2.tag, false).unwrap();
    assert!(c.get().unwrap().is_none());
    assert_eq!(env.q().stats(&q).unwrap().delayed, 1);
    env.advance(999);
    assert!(c.get().unwrap().is_none(), "not before 1000 ms");
    env.advance(1);
    let again = c.get().unwrap().unwrap();
    assert_eq!(body(&again.message), "m1");
    assert!(again.redelivered);
    assert_eq!(again.delivery_count, 2);
}

#[tokio::test]
async fn list_schedule_then_delivery_limit_dead_letters() {
    let env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "work",
        QueueConfig {
            retry: RetryPolicy::List {
                delays_ms: vec![100, 500],
            },
            max_deliveries: Some(4),
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    let opts = EnqueueOptions {
        exchange: "orders".into(),
        routing_keys: vec!["eu.new".into()],
        ..EnqueueOptions::default()
    };
    env.q().publish(&q, msg("job"), opts).await.unwrap();
    let c = env.puller(&q);
    // Delays after deliveries 1, 2, 3: 100, 500, 500 (the last repeats).
    for (n, delay) in [(1, 100), (2, 500), (3, 500)] {
        let d = c.get().unwrap().expect("due");
        assert_eq!(d.delivery_count, n);
        c.nack(d.tag, false, true).unwrap();
        env.advance(delay - 1);
        assert!(
            c.get().unwrap().is_none(),
            "delivery {n}: not before {delay} ms"
        );
        env.advance(1);
    }
    let d = c.get().unwrap().unwrap();
    assert_eq!(d.delivery_count, 4);
    c.nack(d.tag, false, true).unwrap();
    assert!(c.get().unwrap().is_none());
    assert_eq!(env.q().stats(&q).unwrap().messages, 0);
    let dead = env.q().browse(&dlq, 10).unwrap();
    assert_eq!(dead.len(), 1);
    let m = &dead[0];
    assert_eq!(death_field(m, "reason"), FieldValue::from("delivery_limit"));
    assert_eq!(death_field(m, "queue"), FieldValue::from("work"));
    assert_eq!(death_field(m, "exchange"), FieldValue::from("orders"));
    assert_eq!(
        death_field(m, "routing-keys"),
        FieldValue::Array(vec!["eu.new".into()])
    );
    assert_eq!(death_field(m, "delivery-count"), FieldValue::I64(4));
    assert_eq!(death_field(m, "count"), FieldValue::I64(1));
    let secs = (T0 + 1100) / 1000;
    assert_eq!(death_field(m, "time"), FieldValue::Timestamp(secs));
}

#[tokio::test]
async fn exponential_schedule_is_capped() {
    let env = Env::new();
    let q = env.declare(
        "work",
        QueueConfig {
            retry: RetryPolicy::Exponential {
                base_ms: 100,
                factor: 3.0,
                cap_ms: 500,
                jitter: 0.0,
            },
            ..QueueConfig::default()
        },
    );
    env.publish(&q, "job").await;
    let c = env.puller(&q);
    for delay in [100, 300, 500, 500] {
        let d = c.get().unwrap().expect("due");
        c.nack(d.tag, false, true).unwrap();
        env.advance(delay - 1);
        assert!(c.get().unwrap().is_none(), "not before {delay} ms");
        env.advance(1);
    }
    assert_eq!(c.get().unwrap().unwrap().delivery_count, 5);
}

#[tokio::test]
async fn rejected_messages_are_dead_lettered_with_reason() {
    let env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "work",
        QueueConfig {
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    env.publish(&q, "bad").await;
    let c = env.puller(&q);
    let d = c.get().unwrap().unwrap();
    c.reject(d.tag, false).unwrap();
    let dead = env.q().browse(&dlq, 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(body(&dead[0]), "bad");
    assert_eq!(
        death_field(&dead[0], "reason"),
        FieldValue::from("rejected")
    );
    assert_eq!(
        dead[0].headers["x-first-death-queue"],
        FieldValue::from("work")
    );
    assert_eq!(dead[0].id, d.message.id, "the message keeps its id");
}

#[tokio::test]
async fn message_and_queue_ttl_expire_to_the_dead_letter_queue() {
    let env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "work",
        QueueConfig {
            message_ttl_ms: Some(1000),
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    let mut short = msg("short");
    short.properties.expiration_ms = Some(200);
    env.q()
        .publish(&q, short, EnqueueOptions::default())
        .await
        .unwrap();
    env.publish(&q, "long").await;
    env.advance(199);
    assert_eq!(env.bodies(&dlq), Vec::<String>::new());
    env.advance(1);
    assert_eq!(env.bodies(&dlq), ["short"], "per-message TTL is shorter");
    let dead = env.q().browse(&dlq, 1).unwrap();
    assert_eq!(death_field(&dead[0], "reason"), FieldValue::from("expired"));
    assert_eq!(
        death_field(&dead[0], "original-expiration"),
        FieldValue::from("200")
    );
    assert_eq!(dead[0].properties.expiration_ms, None);
    env.advance(799);
    assert_eq!(env.bodies(&q), ["long"]);
    env.advance(1);
    assert_eq!(env.bodies(&q), Vec::<String>::new(), "queue TTL");
    assert_eq!(env.bodies(&dlq), ["short", "long"]);
    // An expired message is never delivered, even without a timer tick.
    env.publish(&q, "late").await;
    env.clock.advance(std::time::Duration::from_millis(1000));
    assert!(env.puller(&q).get().unwrap().is_none());
}

#[tokio::test]
async fn max_length_reject_publish() {
    let env = Env::new();
    let q = env.declare(
        "small",
        QueueConfig {
            max_length: Some(2),
            overflow: Overflow::RejectPublish,
            ..QueueConfig::default()
        },
    );
    assert!(env.publish(&q, "1").await.is_stored());
    assert!(env.publish(&q, "2").await.is_stored());
    assert_eq!(
        env.publish(&q, "3").await,
        PublishOutcome::RejectedMaxLength
    );
    assert_eq!(env.bodies(&q), ["1", "2"]);
    // In-flight messages do not count: taking one makes room.
    let c = env.puller(&q);
    let _d = c.get().unwrap().unwrap();
    assert!(env.publish(&q, "4").await.is_stored());
    assert_eq!(
        env.publish(&q, "5").await,
        PublishOutcome::RejectedMaxLength
    );
}

#[tokio::test]
async fn max_length_drop_head_dead_letters_the_oldest() {
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
    for i in 1..=4 {
        assert!(env.publish(&q, &i.to_string()).await.is_stored());
    }
    assert_eq!(env.bodies(&q), ["3", "4"]);
    assert_eq!(env.bodies(&dlq), ["1", "2"]);
    let dead = env.q().browse(&dlq, 1).unwrap();
    assert_eq!(death_field(&dead[0], "reason"), FieldValue::from("maxlen"));
}

#[tokio::test]
async fn dedup_within_window() {
    let env = Env::new();
    let q = env.declare(
        "dedup",
        QueueConfig {
            dedup_window_ms: Some(1000),
            ..QueueConfig::default()
        },
    );
    let m = || msg("x").with_id("order-42");
    let o = EnqueueOptions::default;
    assert!(env.q().publish(&q, m(), o()).await.unwrap().is_stored());
    env.advance(999);
    assert_eq!(
        env.q().publish(&q, m(), o()).await.unwrap(),
        PublishOutcome::Duplicate
    );
    let other = msg("y").with_id("order-43");
    assert!(env.q().publish(&q, other, o()).await.unwrap().is_stored());
    env.advance(1);
    assert!(env.q().publish(&q, m(), o()).await.unwrap().is_stored());
    assert_eq!(env.bodies(&q), ["x", "y", "x"]);
}

#[tokio::test]
async fn dedup_survives_restart() {
    let mut env = Env::new();
    let q = env.declare(
        "dedup",
        QueueConfig {
            dedup_window_ms: Some(60_000),
            ..QueueConfig::default()
        },
    );
    let o = EnqueueOptions::default;
    let m = || msg("x").with_id("once");
    assert!(env.q().publish(&q, m(), o()).await.unwrap().is_stored());
    env.restart();
    assert_eq!(
        env.q().publish(&q, m(), o()).await.unwrap(),
        PublishOutcome::Duplicate
    );
}

#[tokio::test]
async fn scheduled_delivery_waits_without_blocking() {
    let env = Env::new();
    let q = env.declare("sched", QueueConfig::default());
    let later = EnqueueOptions {
        delay_ms: Some(500),
        ..EnqueueOptions::default()
    };
    env.q().publish(&q, msg("later"), later).await.unwrap();
    env.publish(&q, "now").await;
    let c = env.puller(&q);
    assert_eq!(body(&c.get().unwrap().unwrap().message), "now");
    assert!(c.get().unwrap().is_none());
    env.advance(500);
    let d = c.get().unwrap().unwrap();
    assert_eq!(body(&d.message), "later");
    assert!(!d.redelivered);
}

/// The delay is a router plugin's choice, so any u64: the largest means "not now", never an
/// overflow that wraps to "ready at once".
#[tokio::test]
async fn the_longest_delay_does_not_wrap_around() {
    let env = Env::new();
    let q = env.declare("forever", QueueConfig::default());
    let never = EnqueueOptions {
        delay_ms: Some(u64::MAX),
        ..EnqueueOptions::default()
    };
    assert!(env
        .q()
        .publish(&q, msg("never"), never)
        .await
        .unwrap()
        .is_stored());
    let c = env.puller(&q);
    assert!(c.get().unwrap().is_none());
    env.advance(365 * 24 * 3600 * 1000);
    assert!(c.get().unwrap().is_none());
}

#[tokio::test]
async fn redrive_first_n_then_all() {
    let env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "work",
        QueueConfig {
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    let items = (1..=3)
        .map(|i| PublishItem::new(q.clone(), msg(&i.to_string())))
        .collect();
    env.q().publish_batch(items).await.unwrap();
    let c = env.puller(&q);
    for _ in 0..3 {
        let d = c.get().unwrap().unwrap();
        c.reject(d.tag, false).unwrap();
    }
    assert_eq!(env.bodies(&dlq), ["1", "2", "3"]);
    assert_eq!(env.q().redrive(&dlq, Some(2)).unwrap(), 2);
    assert_eq!(env.bodies(&dlq), ["3"]);
    assert_eq!(env.bodies(&q), ["1", "2"]);
    let d = c.get().unwrap().unwrap();
    assert_eq!(body(&d.message), "1");
    assert_eq!(
        d.delivery_count, 1,
        "a redriven message starts a fresh count"
    );
    assert_eq!(env.q().redrive(&dlq, None).unwrap(), 1);
    assert_eq!(env.bodies(&q), ["1", "2", "3"]);
    assert_eq!(env.q().redrive(&dlq, None).unwrap(), 0);
}
