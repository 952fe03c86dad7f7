//! FIFO, competing consumers, prefetch, settlement, pull, fan-out publish.

use switchyard::queue::{PublishItem, PublishOutcome, QueueConfig, QueueError, QueueName};

use super::common::*;

#[tokio::test]
async fn fifo_round_robin_and_prefetch() {
    let env = Env::new();
    let q = env.declare("work", QueueConfig::default());
    let mut a = env.q().consume(&q, push(2)).unwrap();
    let mut b = env.q().consume(&q, push(2)).unwrap();
    for i in 1..=6 {
        env.publish(&q, &format!("m{i}")).await;
    }
    let da = drain(&mut a);
    let db = drain(&mut b);
    assert_eq!(dbodies(&da), ["m1", "m3"], "round robin, prefetch 2");
    assert_eq!(dbodies(&db), ["m2", "m4"]);
    assert!(da
        .iter()
        .chain(&db)
        .all(|d| !d.redelivered && d.delivery_count == 1));
    assert_eq!(da.iter().map(|d| d.tag).collect::<Vec<_>>(), [1, 2]);
    // Ack both of a's with `multiple`: a gets the rest in order.
    assert_eq!(a.ack(2, true).unwrap(), 2);
    assert_eq!(dbodies(&drain(&mut a)), ["m5", "m6"]);
    assert!(drain(&mut b).is_empty());
    let stats = env.q().stats(&q).unwrap();
    assert_eq!((stats.messages, stats.unacked, stats.consumers), (4, 4, 2));
    assert!(matches!(
        a.ack(1, false),
        Err(QueueError::UnknownDeliveryTag(1))
    ));
}

#[tokio::test]
async fn dropped_consumer_returns_messages_to_their_position() {
    let env = Env::new();
    let q = env.declare("work", QueueConfig::default());
    for i in 1..=5 {
        env.publish(&q, &format!("m{i}")).await;
    }
    let mut a = env.q().consume(&q, push(2)).unwrap();
    assert_eq!(dbodies(&drain(&mut a)), ["m1", "m2"]);
    drop(a);
    let mut b = env.q().consume(&q, push(3)).unwrap();
    let d = drain(&mut b);
    assert_eq!(dbodies(&d), ["m1", "m2", "m3"]);
    assert!(d[0].redelivered && d[1].redelivered && !d[2].redelivered);
    assert_eq!((d[0].delivery_count, d[2].delivery_count), (2, 1));
}

#[tokio::test]
async fn nack_requeue_goes_before_fresh_messages_and_reject_discards() {
    let env = Env::new();
    let q = env.declare("work", QueueConfig::default());
    for i in 1..=3 {
        env.publish(&q, &format!("m{i}")).await;
    }
    let c = env.puller(&q);
    let d1 = c.get().unwrap().unwrap();
    let d2 = c.get().unwrap().unwrap();
    assert_eq!(c.nack(d2.tag, false, true).unwrap(), 1);
    assert_eq!(c.reject(d1.tag, false).unwrap(), 1);
    let again = c.get().unwrap().unwrap();
    assert_eq!(body(&again.message), "m2");
    assert!(again.redelivered);
    assert_eq!(again.delivery_count, 2);
    assert_eq!(body(&c.get().unwrap().unwrap().message), "m3");
    assert!(c.get().unwrap().is_none());
    assert_eq!(
        env.q().stats(&q).unwrap().messages,
        2,
        "m1 rejected without a DLQ is gone"
    );
}

#[tokio::test]
async fn fan_out_is_all_or_nothing() {
    let env = Env::new();
    let a = env.declare("a", QueueConfig::default());
    let b = env.declare("b", QueueConfig::default());
    let missing = QueueName::new("missing").unwrap();
    let items = |extra: Option<&QueueName>| {
        let mut v = vec![
            PublishItem::new(a.clone(), msg("x")),
            PublishItem::new(b.clone(), msg("x")),
        ];
        if let Some(e) = extra {
            v.push(PublishItem::new(e.clone(), msg("x")));
        }
        v
    };
    let err = env
        .q()
        .publish_batch(items(Some(&missing)))
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::NotFound(_)), "{err}");
    assert_eq!(env.q().stats(&a).unwrap().messages, 0, "nothing stored");
    let receipt = env.q().publish_batch(items(None)).await.unwrap();
    assert_eq!(receipt.outcomes, [PublishOutcome::Enqueued { seq: 1 }; 2]);
    assert_eq!(env.bodies(&a), ["x"]);
    assert_eq!(env.bodies(&b), ["x"]);
}

#[tokio::test]
async fn names_and_declarations_are_checked() {
    let env = Env::new();
    assert!(matches!(
        QueueName::new("bad name"),
        Err(QueueError::InvalidName { .. })
    ));
    let q = env.declare("q", QueueConfig::default());
    env.q().declare(&q, QueueConfig::default()).unwrap();
    let other = QueueConfig {
        max_length: Some(1),
        ..QueueConfig::default()
    };
    assert!(matches!(
        env.q().declare(&q, other),
        Err(QueueError::ConfigMismatch(_))
    ));
    let selfie = QueueConfig {
        dead_letter: Some(q.clone()),
        ..QueueConfig::default()
    };
    env.q().declare(&name("r"), selfie.clone()).unwrap();
    assert!(matches!(
        env.q().declare(&q, selfie),
        Err(QueueError::InvalidConfig(_))
    ));
    env.publish(&q, "x").await;
    let mut c = env.q().consume(&q, push(10)).unwrap();
    assert_eq!(env.q().delete(&q).unwrap(), 1);
    assert_eq!(drain(&mut c).len(), 1);
    assert!(c.recv().await.is_none(), "deleted queue ends its consumers");
    assert!(matches!(env.q().stats(&q), Err(QueueError::NotFound(_))));
}
