//! The AMQP 0-9-1 driver, one for Switchyard and RabbitMQ alike, so both are measured through
//! the same client code: the lean [`Wire`](super::wire) connections by default, or lapin
//! (`--client lapin`). Only the topology differs: Switchyard routes W1, W2 and W4
//! through `x-wasm` exchanges (declared from a definitions file at start), RabbitMQ uses the
//! default and a topic exchange, and for W4 a router service in this process. On RabbitMQ,
//! a shared service, every queue and exchange name starts with `compare.`.

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::consuming::{Consuming, Tally, IDLE};
use super::flow::{self, Flow, ACK_EVERY, PIPELINE, WINDOW};
use super::wire_driver::{self, Publisher};

/// Which AMQP broker: decides the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Switchyard,
    RabbitMq,
}

/// Which client code carries the measured messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// One task per connection, no thread hand-offs (`wire.rs`).
    Wire,
    /// lapin: its I/O thread hands each delivery and confirm to the caller's task.
    Lapin,
}

/// Connections of one broker: lapin's, one for publishing and set-up, one for consumers;
/// with [`Client::Wire`], a wire publisher, and a wire connection per consumer per phase.
pub struct Amqp {
    flavor: Flavor,
    client: Client,
    uri: String,
    publisher: Connection,
    consumers: Connection,
    channel: Channel,
    wire: tokio::sync::Mutex<Option<Box<Publisher>>>,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp")
            .field("flavor", &self.flavor)
            .field("client", &self.client)
            .finish()
    }
}

fn s(v: &str) -> ShortString {
    ShortString::from(v)
}

async fn connect_one(uri: &str) -> anyhow::Result<Connection> {
    tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .context("no answer within 5 s")?
    .context("AMQP connect")
}

/// Every queue any flow uses (W4's inbox only exists on RabbitMQ).
pub fn all_queues() -> Vec<String> {
    let mut names: Vec<String> = [Flow::W1, Flow::W2, Flow::W3, Flow::W4]
        .iter()
        .flat_map(|f| f.sinks())
        .map(|s| s.queue)
        .collect();
    names.sort();
    names.dedup();
    names
}

impl Amqp {
    /// The broker's name for queue or exchange `name` of the flows.
    fn name(&self, name: &str) -> String {
        match (self.flavor, name) {
            (_, "") | (Flavor::Switchyard, _) => name.to_string(),
            (Flavor::RabbitMq, _) => format!("compare.{name}"),
        }
    }

    pub async fn connect(uri: &str, flavor: Flavor, client: Client) -> anyhow::Result<Amqp> {
        let publisher = connect_one(uri).await?;
        let consumers = connect_one(uri).await?;
        let channel = publisher.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let wire = match client {
            Client::Wire => Some(Box::new(Publisher::open(uri).await?)),
            Client::Lapin => None,
        };
        Ok(Amqp {
            flavor,
            client,
            uri: uri.to_string(),
            publisher,
            consumers,
            channel,
            wire: tokio::sync::Mutex::new(wire),
        })
    }

    /// RabbitMQ: (re)declare every queue empty, durable, classic; the topic exchange of W2
    /// and its bindings. Switchyard's topology comes from its definitions file.
    pub async fn setup(&self) -> anyhow::Result<()> {
        if self.flavor == Flavor::Switchyard {
            return Ok(());
        }
        let ch = self.publisher.create_channel().await?;
        let mut args = FieldTable::default();
        args.insert(s("x-queue-type"), AMQPValue::LongString("classic".into()));
        let mut queues = all_queues();
        queues.push("w4.inbox".into());
        for q in queues.iter().map(|q| self.name(q)) {
            let q = q.as_str();
            ch.queue_delete(s(q), QueueDeleteOptions::default()).await?;
            let opts = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.queue_declare(s(q), opts, args.clone()).await?;
        }
        let opts = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            s(&self.name("w2")),
            ExchangeKind::Topic,
            opts,
            FieldTable::default(),
        )
        .await?;
        for sink in Flow::W2.sinks() {
            let key = if sink.queue == "analytics" {
                "orders.#".to_string()
            } else {
                sink.queue.clone()
            };
            ch.queue_bind(
                s(&self.name(&sink.queue)),
                s(&self.name("w2")),
                s(&key),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        ch.close(200, s("set up")).await?;
        Ok(())
    }

    /// Where message `key` of `flow` is published: (exchange, routing key).
    fn address(&self, flow: Flow, key: &str) -> (String, String) {
        let (exchange, key) = self.address_of(flow, key);
        match exchange {
            "" => (String::new(), self.name(&key)),
            x => (self.name(x), key),
        }
    }

    fn address_of(&self, flow: Flow, key: &str) -> (&'static str, String) {
        match (self.flavor, flow) {
            (Flavor::Switchyard, Flow::W1) => ("w1", "w1".into()),
            (Flavor::RabbitMq, Flow::W1) => ("", "w1".into()),
            (_, Flow::W2) => ("w2", key.into()),
            (_, Flow::W3) => ("", "w3".into()),
            (Flavor::Switchyard, Flow::W4) => ("w4", String::new()),
            (Flavor::RabbitMq, Flow::W4) => ("", "w4.inbox".into()),
        }
    }

    /// Publishes messages `range` of `flow`, persistent, with at most [`WINDOW`] confirms
    /// outstanding; `rate` paces them (messages per second). Returns once all are confirmed.
    ///
    /// Unpaced, up to [`PIPELINE`] publishes are handed to lapin at once: its
    /// `basic_publish` returns only after its I/O thread has written the frames, so one at a
    /// time would be one socket write and two thread hand-offs per message, a bound of the
    /// client rather than the broker (async-nats batches its writes the same way).
    pub async fn publish(
        &self,
        flow: Flow,
        range: Range<usize>,
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        if let Some(publisher) = self.wire.lock().await.as_mut() {
            return publisher
                .publish(range, rate, |i| {
                    let (key, mut body) = flow.message(i);
                    let (exchange, key) = self.address(flow, &key);
                    if flow == Flow::W1 {
                        flow::stamp(&mut body);
                    }
                    (exchange, key, body)
                })
                .await;
        }
        let (tx, waiter) = confirm_waiter();
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(s("application/json"));
        let start = Instant::now();
        let first = range.start;
        let publish_one = |i: usize| {
            let props = props.clone();
            async move {
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64((i - first) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                // Stamped after the pacing sleep: the latency is the broker's, not the pace's.
                let (key, mut body) = flow.message(i);
                let (exchange, key) = self.address(flow, &key);
                if flow == Flow::W1 {
                    flow::stamp(&mut body);
                }
                self.channel
                    .basic_publish(
                        s(&exchange),
                        s(&key),
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    )
                    .await
            }
        };
        let depth = if rate.is_some() { 1 } else { PIPELINE };
        let mut confirms = futures::stream::iter(range)
            .map(publish_one)
            .buffered(depth);
        while let Some(confirm) = confirms.next().await {
            if tx.send(confirm?).await.is_err() {
                break; // the waiter failed: its error is returned below
            }
        }
        drop(confirms);
        drop(tx);
        waiter.await?
    }

    /// Starts `flow`'s consumers (and, for W4 on RabbitMQ, the router service), counting
    /// `expect` deliveries; `latency` keeps each W1 delivery's publish → receive time.
    pub async fn consume(
        &self,
        flow: Flow,
        expect: usize,
        latency: bool,
    ) -> anyhow::Result<Consuming> {
        let tally = Tally::new(expect);
        if self.client == Client::Wire {
            return self.consume_wire(flow, tally, latency).await;
        }
        let mut tasks = Vec::new();
        for sink in flow.sinks() {
            for n in 0..sink.consumers {
                let ch = self.consumers.create_channel().await?;
                ch.basic_qos(sink.prefetch, BasicQosOptions::default())
                    .await?;
                let tag = format!("{}-{n}", sink.queue);
                let consumer = ch
                    .basic_consume(
                        s(&self.name(&sink.queue)),
                        s(&tag),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                let tally = tally.clone();
                tasks.push(tokio::spawn(consume_loop(
                    ch, consumer, tag, tally, latency,
                )));
            }
        }
        if self.flavor == Flavor::RabbitMq && flow == Flow::W4 {
            tasks.push(router_service(&self.consumers, tally.clone()).await?);
        }
        Ok(Consuming { tally, tasks })
    }

    /// [`Amqp::consume`] over wire connections, one per consumer.
    async fn consume_wire(
        &self,
        flow: Flow,
        tally: Tally,
        latency: bool,
    ) -> anyhow::Result<Consuming> {
        let mut tasks = Vec::new();
        for sink in flow.sinks() {
            for n in 0..sink.consumers {
                let tag = format!("{}-{n}", sink.queue);
                let queue = self.name(&sink.queue);
                let wire = wire_driver::consumer(&self.uri, &queue, &tag, sink.prefetch).await?;
                tasks.push(tokio::spawn(wire_driver::consume_loop(
                    wire,
                    tally.clone(),
                    latency,
                )));
            }
        }
        if self.flavor == Flavor::RabbitMq && flow == Flow::W4 {
            tasks.push(wire_driver::router_service(&self.uri, tally.clone()).await?);
        }
        Ok(Consuming { tally, tasks })
    }

    pub async fn close(self) {
        if let Some(publisher) = self.wire.into_inner() {
            publisher.close().await;
        }
        let _ = self.publisher.close(200, s("bye")).await;
        let _ = self.consumers.close(200, s("bye")).await;
    }
}

/// A sender of confirms and the task that awaits them in order: the channel's capacity (and
/// the [`PIPELINE`] publishes not yet sent to it) keep at most [`WINDOW`] publishes unconfirmed.
fn confirm_waiter() -> (
    mpsc::Sender<PublisherConfirm>,
    JoinHandle<anyhow::Result<()>>,
) {
    let (tx, mut rx) = mpsc::channel::<PublisherConfirm>(WINDOW - PIPELINE - 1);
    let waiter = tokio::spawn(async move {
        while let Some(confirm) = rx.recv().await {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                other => bail!("publish not confirmed: {other:?}"),
            }
        }
        Ok(())
    });
    (tx, waiter)
}

/// One consumer: counts deliveries, acknowledges cumulatively every [`ACK_EVERY`] and when
/// idle, cancels itself when the phase stops.
async fn consume_loop(
    ch: Channel,
    mut consumer: lapin::Consumer,
    tag: String,
    tally: Tally,
    latency: bool,
) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::new();
    let mut unacked = 0;
    let mut last = 0;
    let multiple = BasicAckOptions { multiple: true };
    loop {
        match tokio::time::timeout(IDLE, consumer.next()).await {
            Ok(Some(delivery)) => {
                let d = delivery?;
                if latency {
                    samples.extend(flow::age_us(&d.data));
                }
                last = d.delivery_tag;
                unacked += 1;
                if unacked >= ACK_EVERY {
                    ch.basic_ack(last, multiple).await?;
                    unacked = 0;
                }
                tally.delivered();
            }
            Ok(None) => bail!("consumer {tag} was cancelled by the broker"),
            Err(_) => {
                if unacked > 0 {
                    ch.basic_ack(last, multiple).await?;
                    unacked = 0;
                }
                if tally.stopping() {
                    break;
                }
            }
        }
    }
    ch.basic_cancel(s(&tag), BasicCancelOptions::default())
        .await?;
    ch.close(200, s("phase over")).await?;
    Ok(samples)
}

/// RabbitMQ's W4 workaround: a service that consumes `w4.inbox`, parses each order, decides
/// as `plugins/json-router` would, republishes to the destination queues with confirms, and
/// acknowledges the inbox delivery once its outputs are confirmed. Names carry RabbitMQ's
/// `compare.` prefix.
async fn router_service(
    conn: &Connection,
    tally: Tally,
) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<u64>>>> {
    let inbox = conn.create_channel().await?;
    inbox.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = inbox
        .basic_consume(
            s("compare.w4.inbox"),
            s("router"),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let out = conn.create_channel().await?;
    out.confirm_select(ConfirmSelectOptions::default()).await?;
    let (tx, mut rx) = mpsc::channel::<(u64, Vec<PublisherConfirm>)>(WINDOW / 2);
    let acker_channel = inbox.clone();
    let acker = tokio::spawn(async move {
        let multiple = BasicAckOptions { multiple: true };
        let mut unacked = 0;
        while let Some((tag, confirms)) = rx.recv().await {
            for c in confirms {
                match c.await? {
                    Confirmation::Ack(None) => {}
                    other => bail!("router service publish not confirmed: {other:?}"),
                }
            }
            unacked += 1;
            if unacked >= ACK_EVERY || rx.is_empty() {
                acker_channel.basic_ack(tag, multiple).await?;
                unacked = 0;
            }
        }
        anyhow::Ok(())
    });
    Ok(tokio::spawn(async move {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(s("application/json"));
        loop {
            match tokio::time::timeout(IDLE, consumer.next()).await {
                Ok(Some(delivery)) => {
                    let d = delivery?;
                    let outputs = flow::json_route(&d.data).map_err(anyhow::Error::msg)?;
                    let mut confirms = Vec::with_capacity(outputs.len());
                    for (queue, body) in outputs {
                        confirms.push(
                            out.basic_publish(
                                s(""),
                                s(&format!("compare.{queue}")),
                                BasicPublishOptions::default(),
                                &body,
                                props.clone(),
                            )
                            .await?,
                        );
                    }
                    if tx.send((d.delivery_tag, confirms)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => bail!("the router service's consumer was cancelled"),
                Err(_) if tally.stopping() => break,
                Err(_) => {}
            }
        }
        drop(tx);
        acker.await??;
        inbox
            .basic_cancel(s("router"), BasicCancelOptions::default())
            .await?;
        inbox.close(200, s("phase over")).await?;
        out.close(200, s("phase over")).await?;
        Ok(Vec::new())
    }))
}
