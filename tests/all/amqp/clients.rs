//! Real-client tests with Rust's `lapin`.

use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use super::Server;

pub(super) async fn connect(server: &Server) -> (Connection, Channel) {
    let conn = Connection::connect(&server.uri(), ConnectionProperties::default())
        .await
        .expect("lapin connects");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

pub(super) fn s(v: &str) -> ShortString {
    v.into()
}

pub(super) fn table(items: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in items {
        t.insert(s(k), v.clone());
    }
    t
}

pub(super) fn long(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

pub(super) async fn declare(ch: &Channel, name: &str, args: FieldTable) {
    ch.queue_declare(
        s(name),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
}

pub(super) async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) -> Confirmation {
    ch.basic_publish(
        s(exchange),
        s(key),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap()
}

pub(super) async fn next(consumer: &mut lapin::Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10s")
        .expect("stream open")
        .expect("delivery ok")
}

pub(super) async fn get_body(ch: &Channel, queue: &str) -> Option<String> {
    ch.basic_get(s(queue), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned())
}

pub(super) fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

#[tokio::test]
async fn publish_consume_with_pipelined_confirms_in_order() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    declare(&ch, "work", FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        let p = ch
            .basic_publish(
                s(""),
                s("work"),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        pending.push(p);
    }
    for p in pending {
        assert!(matches!(p.await.unwrap(), Confirmation::Ack(None)));
    }
    ch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            s("work"),
            s("c1"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..200 {
        let d = next(&mut consumer).await;
        assert_eq!(body(&d), format!("m{i}"));
        assert!(!d.redelivered);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let q = switchyard::queue::QueueName::new("work").unwrap();
    assert_eq!(server.broker.queues().stats(&q).unwrap().messages, 0);
}

#[tokio::test]
async fn competing_consumers_share_the_work_and_unacked_work_is_redelivered() {
    let server = Server::start().await;
    let (_c1, ch1) = connect(&server).await;
    let (c2, ch2) = connect(&server).await;
    declare(&ch1, "jobs", FieldTable::default()).await;
    ch1.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    ch2.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut a = ch1
        .basic_consume(
            s("jobs"),
            s("a"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut b = ch2
        .basic_consume(
            s("jobs"),
            s("b"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..10 {
        publish(&ch1, "", "jobs", &format!("j{i}")).await;
    }
    // b takes one and dies without acking: its job goes back and a gets it, redelivered.
    let held = next(&mut b).await;
    c2.close(200, s("bye")).await.unwrap();
    let mut seen = vec![body(&held)];
    let mut redelivered = 0;
    while seen.len() < 11 {
        let d = next(&mut a).await;
        if d.redelivered {
            redelivered += 1;
        }
        seen.push(body(&d));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(redelivered, 1);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10);
}

#[tokio::test]
async fn request_reply_with_reply_to_and_correlation_id() {
    let server = Server::start().await;
    let (_sc, server_ch) = connect(&server).await;
    declare(&server_ch, "rpc", FieldTable::default()).await;
    let mut requests = server_ch
        .basic_consume(
            s("rpc"),
            s("srv"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let responder = tokio::spawn(async move {
        let d = next(&mut requests).await;
        let reply_to = d.properties.reply_to().clone().unwrap();
        let corr = d.properties.correlation_id().clone().unwrap();
        let answer = format!("{}!", body(&d));
        server_ch
            .basic_publish(
                s(""),
                reply_to,
                BasicPublishOptions::default(),
                answer.as_bytes(),
                BasicProperties::default().with_correlation_id(corr),
            )
            .await
            .unwrap();
        d.ack(BasicAckOptions::default()).await.unwrap();
        server_ch
    });
    let (_cc, ch) = connect(&server).await;
    let q = ch
        .queue_declare(
            s(""),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let reply_queue = q.name().clone();
    assert!(reply_queue.as_str().starts_with("amq.gen-"));
    let mut replies = ch
        .basic_consume(
            reply_queue.clone(),
            s(""),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.basic_publish(
        s(""),
        s("rpc"),
        BasicPublishOptions::default(),
        b"ping",
        BasicProperties::default()
            .with_reply_to(reply_queue)
            .with_correlation_id(s("c-42")),
    )
    .await
    .unwrap();
    let reply = next(&mut replies).await;
    assert_eq!(body(&reply), "ping!");
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some("c-42")
    );
    responder.await.unwrap();
}

#[tokio::test]
async fn fanout_publish_subscribe() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    ch.exchange_declare(
        s("news"),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in ["sub1", "sub2"] {
        declare(&ch, q, FieldTable::default()).await;
        ch.queue_bind(
            s(q),
            s("news"),
            s(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "news", "whatever", "hello").await;
    assert_eq!(get_body(&ch, "sub1").await.as_deref(), Some("hello"));
    assert_eq!(get_body(&ch, "sub2").await.as_deref(), Some("hello"));
    assert_eq!(get_body(&ch, "sub1").await, None);
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_with_312() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            s(""),
            s("no-such-queue"),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let Confirmation::Ack(Some(returned)) = confirm else {
        panic!("expected a return, got {confirm:?}")
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.delivery.data, b"lost");
}

#[tokio::test]
async fn bad_declares_get_channel_errors() {
    let server = Server::start().await;
    let (conn, ch) = connect(&server).await;
    let err = ch
        .queue_declare(
            s("missing"),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?} {err}").contains("NOT_FOUND"), "{err:?}");

    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "q1", FieldTable::default()).await;
    let err = ch
        .queue_declare(
            s("q1"),
            QueueDeclareOptions::default(),
            table(&[("x-max-length", AMQPValue::LongInt(5))]),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?} {err}").contains("PRECONDITION_FAILED"),
        "{err:?}"
    );

    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            s("routed"),
            ExchangeKind::Custom("x-wasm".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?} {err}").contains("PRECONDITION_FAILED"),
        "{err:?}"
    );
}

#[tokio::test]
async fn exclusive_queues_are_locked_to_their_connection_and_die_with_it() {
    let server = Server::start().await;
    let (owner, ch) = connect(&server).await;
    ch.queue_declare(
        s("mine"),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let (_other, ch2) = connect(&server).await;
    let err = ch2
        .basic_consume(
            s("mine"),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?} {err}").contains("RESOURCE_LOCKED"),
        "{err:?}"
    );
    owner.close(200, s("bye")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let q = switchyard::queue::QueueName::new("mine").unwrap();
    assert!(
        server.broker.queues().stats(&q).is_err(),
        "exclusive queue must be deleted"
    );
}

/// An ack followed at once by `basic.cancel` or `channel.close` (as a consumer that stops does)
/// settles what it acknowledged: nothing acknowledged comes back. The ack reaches the
/// consumer's task through a queue, and a cancel that stopped the task first lost it.
#[tokio::test]
async fn an_ack_just_before_a_cancel_or_close_is_never_undone() {
    let server = Server::start().await;
    let (conn, ch) = connect(&server).await;
    declare(&ch, "settled", FieldTable::default()).await;
    for round in 0..20 {
        let consumer_ch = conn.create_channel().await.unwrap();
        for i in 0..8 {
            publish(&ch, "", "settled", &format!("r{round}-{i}")).await;
        }
        let tag = format!("c{round}");
        let mut consumer = consumer_ch
            .basic_consume(
                s("settled"),
                s(&tag),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut last = 0;
        for _ in 0..8 {
            last = next(&mut consumer).await.delivery_tag;
        }
        // Sent back to back: the server reads both frames at once.
        let ack = consumer_ch.basic_ack(last, BasicAckOptions { multiple: true });
        if round % 2 == 0 {
            let cancel = consumer_ch.basic_cancel(s(&tag), BasicCancelOptions::default());
            let (acked, cancelled) = futures::join!(ack, cancel);
            acked.unwrap();
            cancelled.unwrap();
            consumer_ch.close(200, s("done")).await.unwrap();
        } else {
            let (acked, closed) = futures::join!(ack, consumer_ch.close(200, s("done")));
            acked.unwrap();
            closed.unwrap();
        }
        let left = get_body(&ch, "settled").await;
        assert_eq!(
            left, None,
            "round {round}: an acknowledged message came back"
        );
    }
}
