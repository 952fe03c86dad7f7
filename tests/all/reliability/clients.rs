//! The crash loop's AMQP clients (lapin): confirming publishers and acking consumers that
//! record what they see in the [`Ledger`], and the topology they use.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use tokio::time::timeout;

use super::body;
use super::ledger::Ledger;
use super::process::connect;

/// The queue the consumers work on.
pub const WORK: &str = "work";
/// A fanout exchange and its destinations, which nobody consumes until the end.
pub const FAN: &str = "fan";
pub const FAN_QUEUES: [&str; 3] = ["fan-a", "fan-b", "fan-c"];
/// Publishes in flight per publisher before it waits for their confirms.
const WINDOW: usize = 64;

/// Declare the queues, the fanout exchange and its bindings (idempotent: every lifetime).
pub async fn declare_topology(ch: &Channel) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(WORK.into(), durable, FieldTable::default())
        .await?;
    ch.exchange_declare(
        FAN.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    for q in FAN_QUEUES {
        ch.queue_declare(q.into(), durable, FieldTable::default())
            .await?;
        ch.queue_bind(
            q.into(),
            FAN.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

/// Publish `<prefix>-<n>` messages with confirms, `WINDOW` in flight, until `limit` or the
/// connection dies; record each acked id in `confirmed`.
pub async fn publish(
    uri: String,
    exchange: &'static str,
    key: &'static str,
    prefix: String,
    limit: usize,
    confirmed: Arc<Mutex<Ledger>>,
) -> lapin::Result<()> {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut n = 0;
    while n < limit {
        let mut window = Vec::with_capacity(WINDOW);
        for _ in 0..WINDOW {
            let id = format!("{prefix}-{n}");
            n += 1;
            let props = BasicProperties::default()
                .with_message_id(id.clone().into())
                .with_delivery_mode(2);
            let confirm = ch
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    &body::make(&id),
                    props,
                )
                .await?;
            window.push((id, confirm));
        }
        for (id, confirm) in window {
            match confirm.await? {
                Confirmation::Ack(_) => confirmed.lock().unwrap().confirm(id),
                Confirmation::Nack(_) => confirmed.lock().unwrap().nacked += 1,
                Confirmation::NotRequested => unreachable!("confirm mode is on"),
            }
        }
    }
    Ok(())
}

/// How a consumer settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Prefetch 100, each delivery acked once checked.
    Each,
    /// Prefetch 20, nothing acked: the messages stay in flight until the connection dies.
    Never,
}

/// How long a consumer waits on lapin for a delivery or an ack before it takes the broker for
/// gone.
const LAPIN_STALL: Duration = Duration::from_secs(4);

/// Consume `WORK`, check and record every delivery and, with [`Acks::Each`], ack it and
/// record the ack.
pub async fn consume(
    uri: String,
    cycle: usize,
    tag: String,
    acks: Acks,
    ledger: Arc<Mutex<Ledger>>,
) -> lapin::Result<()> {
    let conn = connect(&uri).await;
    let ch = conn.create_channel().await?;
    let prefetch = if acks == Acks::Each { 100 } else { 20 };
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            WORK.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Every wait is bounded: lapin sometimes misses a killed broker's closed socket (heartbeats
    // do not help: the connection is not what waits) and a consumer would wait forever. Before
    // a kill, a delivery or an ack never takes seconds; after one, giving up is the right end.
    while let Ok(Some(delivery)) = timeout(LAPIN_STALL, consumer.next()).await {
        let d = delivery?;
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let intact = body::check(&id, &d.data);
        ledger
            .lock()
            .unwrap()
            .delivered(&id, cycle, d.redelivered, intact);
        if acks == Acks::Each {
            match timeout(LAPIN_STALL, d.ack(BasicAckOptions::default())).await {
                Ok(acked) => {
                    acked?;
                }
                Err(_) => break,
            }
            ledger.lock().unwrap().acked(&id, cycle);
        }
    }
    Ok(())
}

/// Every message of `queue` (which has no consumer): its count from a passive declare, then
/// that many deliveries to a no-ack consumer. Returns (id, intact) pairs.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<(String, Result<(), String>)> {
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let count = q.message_count() as usize;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            format!("drain-{queue}").as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let next = timeout(Duration::from_secs(30), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{queue}: {} of {count} messages drained", out.len()))
            .expect("consumer open")
            .expect("delivery");
        let id = next
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let intact = body::check(&id, &next.data);
        out.push((id, intact));
    }
    out
}
