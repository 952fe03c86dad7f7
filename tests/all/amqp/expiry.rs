//! `x-expires`: a queue unused for N ms (no consumer, no `basic.get`, no redeclaration) is
//! deleted with its bindings, as RabbitMQ does; the setting survives a restart and the clock
//! starts afresh then. Waits poll; the only fixed sleeps prove that something does *not*
//! happen while a queue is in use.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;
use switchyard::queue::QueueName;

use super::clients::{connect, declare, s, table};
use super::Server;

fn exists(server: &Server, name: &str) -> bool {
    server
        .broker
        .queues()
        .config(&QueueName::new(name).unwrap())
        .is_ok()
}

/// Poll until `name` is gone; returns when it was seen gone, measured from `since`.
async fn wait_gone(server: &Server, name: &str, since: Instant) -> Duration {
    while exists(server, name) {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "queue {name} still exists after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    since.elapsed()
}

fn expires(ms: i32) -> FieldTable {
    table(&[("x-expires", AMQPValue::LongInt(ms))])
}

#[tokio::test]
async fn an_unused_queue_is_deleted_with_its_bindings() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    ch.exchange_declare(
        s("exp-x"),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let declared = Instant::now();
    declare(&ch, "exp-q", expires(300)).await;
    ch.queue_bind(
        s("exp-q"),
        s("exp-x"),
        s(""),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let gone_after = wait_gone(&server, "exp-q", declared).await;
    assert!(
        gone_after >= Duration::from_millis(300),
        "deleted after {gone_after:?}, before its 300 ms expiry"
    );
    let topology = server.broker.topology();
    assert!(
        topology
            .bindings()
            .all(|b| !format!("{:?}", b.target).contains("exp-q")),
        "a binding to the expired queue is left"
    );
    // Clients see it gone: a passive declare is 404.
    let err = ch
        .queue_declare(
            s("exp-q"),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn consumers_gets_and_redeclares_keep_a_queue() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    declare(&ch, "exp-used", expires(200)).await;
    let mut consumer = ch
        .basic_consume(
            s("exp-used"),
            s("c1"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        exists(&server, "exp-used"),
        "deleted while it had a consumer"
    );
    let cancelled = Instant::now();
    ch.basic_cancel(s("c1"), BasicCancelOptions::default())
        .await
        .unwrap();
    assert!(consumer.next().await.is_none(), "consumer stream ends");
    let after = wait_gone(&server, "exp-used", cancelled).await;
    assert!(
        after >= Duration::from_millis(200),
        "deleted {after:?} after the last consumer left; the clock must restart then"
    );

    // basic.get and redeclaration count as use too.
    declare(&ch, "exp-get", expires(300)).await;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        if i % 2 == 0 {
            ch.basic_get(s("exp-get"), BasicGetOptions { no_ack: true })
                .await
                .unwrap();
        } else {
            declare(&ch, "exp-get", expires(300)).await;
        }
    }
    assert!(exists(&server, "exp-get"), "deleted while in use");
    wait_gone(&server, "exp-get", Instant::now()).await;
}

#[tokio::test]
async fn bad_or_inequivalent_expiry_is_406() {
    let server = Server::start().await;
    let (conn, _) = connect(&server).await;
    for args in [
        expires(0),
        expires(-5),
        table(&[("x-expires", super::clients::long("soon"))]),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let err = ch
            .queue_declare(s("exp-bad"), QueueDeclareOptions::default(), args)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
    }
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "exp-eq", expires(60_000)).await;
    let err = ch
        .queue_declare(s("exp-eq"), QueueDeclareOptions::default(), expires(1000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
}

#[tokio::test]
async fn expiry_is_persisted_and_restarts_afresh() {
    let server = Server::start().await;
    {
        let (conn, ch) = connect(&server).await;
        declare(&ch, "exp-durable", expires(1500)).await;
        conn.close(200, "bye".into()).await.unwrap();
    }
    // Unused for most of its expiry before the restart: if the clock carried over, the queue
    // would go ~500 ms after it. RabbitMQ starts the timer again at boot, and so do we.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let restarted = Instant::now();
    let server = server.restart().await;
    let config = server
        .broker
        .queues()
        .config(&QueueName::new("exp-durable").unwrap())
        .expect("the queue survives the restart");
    assert_eq!(config.expires_ms, Some(1500));
    let after = wait_gone(&server, "exp-durable", restarted).await;
    assert!(
        after >= Duration::from_millis(1500),
        "deleted {after:?} after the restart began, before a fresh 1500 ms"
    );
}
