//! Queue policies and plugin routing through lapin: dead-lettering with `x-death`, TTL,
//! max-length, delayed retries and `x-wasm` exchanges.

use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

use super::clients::{body, connect, declare, get_body, long, next, publish, s, table};
use super::Server;

/// A direct DLX with one bound queue: the dead-letter target the engine needs.
async fn dead_letter_setup(ch: &Channel, queue: &str, mut args: Vec<(&str, AMQPValue)>) {
    ch.exchange_declare(
        s("dlx"),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(ch, "dlq", FieldTable::default()).await;
    ch.queue_bind(
        s("dlq"),
        s("dlx"),
        s("dead"),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    args.push(("x-dead-letter-exchange", long("dlx")));
    args.push(("x-dead-letter-routing-key", long("dead")));
    declare(ch, queue, table(&args)).await;
}

fn death_field<'a>(d: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    let headers = d.properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    first.inner().get(name)
}

fn text(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn dead_lettering_carries_x_death() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    dead_letter_setup(&ch, "orders", vec![]).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publish(&ch, "", "orders", "bad order").await;
    let mut c = ch
        .basic_consume(
            s("orders"),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut c).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let mut dead = ch
        .basic_consume(
            s("dlq"),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut dead).await;
    assert_eq!(body(&d), "bad order");
    assert_eq!(text(death_field(&d, "reason")), "rejected");
    assert_eq!(text(death_field(&d, "queue")), "orders");
    assert!(
        matches!(death_field(&d, "count"), Some(v) if format!("{v:?}").contains('1')),
        "{:?}",
        death_field(&d, "count")
    );
}

#[tokio::test]
async fn ttl_expires_into_the_dead_letter_queue() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    dead_letter_setup(
        &ch,
        "short-lived",
        vec![("x-message-ttl", AMQPValue::LongInt(50))],
    )
    .await;
    publish(&ch, "", "short-lived", "stale").await;
    let mut dead = ch
        .basic_consume(
            s("dlq"),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut dead).await;
    assert_eq!(body(&d), "stale");
    assert_eq!(text(death_field(&d, "reason")), "expired");
}

#[tokio::test]
async fn max_length_drops_head_or_nacks_with_reject_publish() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    declare(
        &ch,
        "bounded",
        table(&[("x-max-length", AMQPValue::LongInt(2))]),
    )
    .await;
    declare(
        &ch,
        "strict",
        table(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-overflow", long("reject-publish")),
        ]),
    )
    .await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for b in ["1", "2", "3"] {
        assert!(matches!(
            publish(&ch, "", "bounded", b).await,
            Confirmation::Ack(_)
        ));
    }
    assert_eq!(get_body(&ch, "bounded").await.as_deref(), Some("2"));
    assert_eq!(get_body(&ch, "bounded").await.as_deref(), Some("3"));
    let confirms = [
        publish(&ch, "", "strict", "1").await,
        publish(&ch, "", "strict", "2").await,
        publish(&ch, "", "strict", "3").await,
    ];
    assert!(matches!(confirms[1], Confirmation::Ack(_)));
    assert!(
        matches!(confirms[2], Confirmation::Nack(_)),
        "{:?}",
        confirms[2]
    );
}

#[tokio::test]
async fn nack_with_requeue_waits_for_the_retry_delay() {
    let server = Server::start().await;
    let (_conn, ch) = connect(&server).await;
    let delays = AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongInt(300)]));
    declare(&ch, "retrying", table(&[("x-retry-delays", delays)])).await;
    publish(&ch, "", "retrying", "flaky").await;
    let mut c = ch
        .basic_consume(
            s("retrying"),
            s(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut c).await;
    assert!(!d.redelivered);
    let nacked = Instant::now();
    d.nack(BasicNackOptions {
        requeue: true,
        multiple: false,
    })
    .await
    .unwrap();
    let again = next(&mut c).await;
    assert!(again.redelivered);
    assert!(
        nacked.elapsed() >= Duration::from_millis(250),
        "{:?}",
        nacked.elapsed()
    );
    again.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn x_wasm_exchange_routes_with_a_plugin() {
    let server = Server::start().await;
    let opts = switchyard::plugin::DeployOptions {
        config: [("route.eu", "orders-eu"), ("default", "orders-other")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let wasm = crate::support::plugins::rust_plugin_bytes("header_router");
    server
        .broker
        .plugins()
        .deploy("region-router", &wasm, opts)
        .unwrap();
    let (_conn, ch) = connect(&server).await;
    for q in ["orders-eu", "orders-other"] {
        declare(&ch, q, FieldTable::default()).await;
    }
    ch.exchange_declare(
        s("orders"),
        ExchangeKind::Custom("x-wasm".into()),
        ExchangeDeclareOptions::default(),
        table(&[("x-plugin", long("region-router"))]),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for (region, body) in [("eu", "o1"), ("us", "o2"), ("eu", "o3")] {
        let props = BasicProperties::default().with_headers(table(&[("route", long(region))]));
        let c = ch
            .basic_publish(
                s("orders"),
                s(""),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(matches!(c, Confirmation::Ack(None)), "{c:?}");
    }
    assert_eq!(get_body(&ch, "orders-eu").await.as_deref(), Some("o1"));
    assert_eq!(get_body(&ch, "orders-eu").await.as_deref(), Some("o3"));
    assert_eq!(get_body(&ch, "orders-other").await.as_deref(), Some("o2"));
}
