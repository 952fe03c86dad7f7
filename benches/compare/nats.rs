//! The NATS JetStream driver (async-nats). A flow's queues become durable pull consumers of
//! one file-backed stream per flow, whose retention removes a message once acknowledged, as a
//! queue does: W1 and W2 on interest streams (cumulative acks allowed; W2 has one consumer per
//! queue filtered by subject), W3 on a work-queue stream (explicit acks), filtered by subject (`compare.w2.orders.r<k>`; `analytics` takes all). W4 has no native form here.
//! Streams are named `COMPARE_W<n>` and subjects start with `compare.`: the server is shared.

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::consuming::{Consuming, Tally, IDLE};
use super::flow::{self, Flow, ACK_EVERY, WINDOW};

/// Connections to one NATS server: one for publishing, one for consumers.
#[derive(Debug)]
pub struct Nats {
    publisher: Context,
    consumers: Context,
}

/// A flow's stream: name, subjects, retention.
fn stream_of(flow: Flow) -> Option<(&'static str, &'static str, RetentionPolicy)> {
    match flow {
        Flow::W1 => Some(("COMPARE_W1", "compare.w1", RetentionPolicy::Interest)),
        Flow::W2 => Some(("COMPARE_W2", "compare.w2.>", RetentionPolicy::Interest)),
        Flow::W3 => Some(("COMPARE_W3", "compare.w3", RetentionPolicy::WorkQueue)),
        Flow::W4 => None,
    }
}

/// The durable consumers of a flow's stream: (name, subject filter, ack policy). W3's four
/// competing consumers share one durable and acknowledge each message (a cumulative ack
/// would settle other pullers' messages); single pullers acknowledge cumulatively.
fn consumers_of(flow: Flow) -> Vec<(String, String, AckPolicy)> {
    match flow {
        Flow::W1 => vec![("w1".into(), String::new(), AckPolicy::All)],
        Flow::W3 => vec![("w3".into(), String::new(), AckPolicy::Explicit)],
        Flow::W2 => flow
            .sinks()
            .into_iter()
            .map(|s| {
                let filter = if s.queue == "analytics" {
                    String::new()
                } else {
                    format!("compare.w2.{}", s.queue)
                };
                (s.queue.replace('.', "_"), filter, AckPolicy::All)
            })
            .collect(),
        Flow::W4 => Vec::new(),
    }
}

async fn connect_one(url: &str) -> anyhow::Result<Context> {
    let client = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url))
        .await
        .context("no answer within 5 s")??;
    Ok(jetstream::new(client))
}

impl Nats {
    pub async fn connect(url: &str) -> anyhow::Result<Nats> {
        let publisher = connect_one(url).await?;
        let consumers = connect_one(url).await?;
        Ok(Nats {
            publisher,
            consumers,
        })
    }

    /// Recreates every flow's stream (empty) and its durable consumers.
    pub async fn setup(&self) -> anyhow::Result<()> {
        for flow in [Flow::W1, Flow::W2, Flow::W3] {
            let Some((name, subjects, retention)) = stream_of(flow) else {
                continue;
            };
            let _ = self.publisher.delete_stream(name).await;
            let stream = self
                .publisher
                .create_stream(StreamConfig {
                    name: name.into(),
                    subjects: vec![subjects.into()],
                    retention,
                    storage: StorageType::File,
                    ..Default::default()
                })
                .await
                .with_context(|| format!("create stream {name}"))?;
            for (durable, filter, ack_policy) in consumers_of(flow) {
                stream
                    .create_consumer(pull::Config {
                        durable_name: Some(durable.clone()),
                        filter_subject: filter,
                        ack_policy,
                        max_ack_pending: WINDOW as i64,
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("create consumer {durable}"))?;
            }
        }
        Ok(())
    }

    /// Publishes messages `range` of `flow` with at most [`WINDOW`] publish acks outstanding;
    /// `rate` paces them (messages per second). Returns once all are acknowledged.
    pub async fn publish(
        &self,
        flow: Flow,
        range: Range<usize>,
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::channel::<PublishAckFuture>(WINDOW - 1);
        let waiter = tokio::spawn(async move {
            while let Some(ack) = rx.recv().await {
                ack.await?;
            }
            anyhow::Ok(())
        });
        let start = Instant::now();
        let first = range.start;
        for i in range {
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64((i - first) as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let (key, mut body) = flow.message(i);
            let subject = match flow {
                Flow::W1 => "compare.w1".to_string(),
                Flow::W2 => format!("compare.w2.{key}"),
                Flow::W3 => "compare.w3".to_string(),
                Flow::W4 => bail!("W4 has no NATS form"),
            };
            if flow == Flow::W1 {
                flow::stamp(&mut body);
            }
            let ack = self.publisher.publish(subject, body.into()).await?;
            if tx.send(ack).await.is_err() {
                break;
            }
        }
        drop(tx);
        waiter.await?
    }

    /// Starts `flow`'s pullers, counting `expect` deliveries.
    pub async fn consume(
        &self,
        flow: Flow,
        expect: usize,
        latency: bool,
    ) -> anyhow::Result<Consuming> {
        let (stream_name, _, _) = stream_of(flow).context("W4 has no NATS form")?;
        let stream = self.consumers.get_stream(stream_name).await?;
        let tally = Tally::new(expect);
        let mut tasks = Vec::new();
        let sinks = flow.sinks();
        for ((durable, _, ack_policy), sink) in consumers_of(flow).into_iter().zip(sinks) {
            let consumer: jetstream::consumer::PullConsumer =
                stream
                    .get_consumer(&durable)
                    .await
                    .map_err(|e| anyhow::anyhow!("consumer {durable}: {e}"))?;
            for _ in 0..sink.consumers {
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(sink.prefetch as usize)
                    .messages()
                    .await?;
                let tally = tally.clone();
                tasks.push(tokio::spawn(pull_loop(
                    messages, ack_policy, tally, latency,
                )));
            }
        }
        Ok(Consuming { tally, tasks })
    }

    /// Bytes JetStream reports stored in the flows' streams.
    pub async fn stored_bytes(&self) -> Option<u64> {
        let mut total = 0;
        for flow in [Flow::W1, Flow::W2, Flow::W3] {
            let (name, _, _) = stream_of(flow)?;
            let mut stream = self.publisher.get_stream(name).await.ok()?;
            total += stream.info().await.ok()?.state.bytes;
        }
        Some(total)
    }
}

async fn pull_loop(
    mut messages: pull::Stream,
    ack_policy: AckPolicy,
    tally: Tally,
    latency: bool,
) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::new();
    let mut unacked = 0;
    let mut last: Option<jetstream::Message> = None;
    loop {
        match tokio::time::timeout(IDLE, messages.next()).await {
            Ok(Some(message)) => {
                let m = message.map_err(|e| anyhow::anyhow!("pull: {e}"))?;
                if latency {
                    samples.extend(flow::age_us(&m.payload));
                }
                if ack_policy == AckPolicy::All {
                    unacked += 1;
                    if unacked >= ACK_EVERY {
                        m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                        unacked = 0;
                        last = None;
                    } else {
                        last = Some(m);
                    }
                } else {
                    m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                }
                tally.delivered();
            }
            Ok(None) => bail!("the pull stream ended"),
            Err(_) => {
                if let Some(m) = last.take() {
                    m.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                    unacked = 0;
                }
                if tally.stopping() {
                    break;
                }
            }
        }
    }
    Ok(samples)
}
