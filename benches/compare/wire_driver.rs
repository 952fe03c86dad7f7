//! The workloads' publisher, consumers and RabbitMQ's W4 router service over [`Wire`]
//! connections: each is one task that owns its connection, so a message costs no hand-off
//! between threads (see `wire.rs` for why).

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use amq_protocol::protocol::BasicProperties;
use tokio::task::JoinHandle;

use super::consuming::{Tally, IDLE};
use super::flow::{self, ACK_EVERY, PIPELINE, WINDOW};
use super::wire::{Confirms, Deliveries, Wire};

/// Every channel here is channel 1, except the router service's publishing channel.
const CHANNEL: u16 = 1;

/// Persistent JSON, as every workload publishes.
pub fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// A publisher connection with a confirm-mode channel; kept across phases, so its delivery
/// tags keep counting.
#[derive(Debug)]
pub struct Publisher {
    wire: Wire,
    published: u64,
    confirms: Confirms,
}

/// Where one message goes and what it carries: (exchange, routing key, body).
pub type Message = (String, String, Vec<u8>);

impl Publisher {
    pub async fn open(uri: &str) -> anyhow::Result<Publisher> {
        let mut wire = Wire::open(uri).await?;
        wire.open_channel(CHANNEL).await?;
        wire.confirm_select(CHANNEL).await?;
        Ok(Publisher {
            wire,
            published: 0,
            confirms: Confirms::default(),
        })
    }

    /// Publishes messages `range` (`message(i)` makes message `i`, stamped just before it is
    /// encoded) with at most [`WINDOW`] unconfirmed; returns once all are confirmed. Unpaced,
    /// it writes [`PIPELINE`] publishes per socket write, as the lapin driver hands lapin
    /// [`PIPELINE`] at once; `rate` (messages per second) sends each one when it is due.
    pub async fn publish(
        &mut self,
        range: Range<usize>,
        rate: Option<f64>,
        mut message: impl FnMut(usize) -> Message,
    ) -> anyhow::Result<()> {
        let props = properties();
        let start = Instant::now();
        let first = range.start;
        let mut next = range.start;
        let last = self.published + range.len() as u64;
        loop {
            while let Some(frame) = self.wire.next_frame()? {
                self.confirms.apply(&frame)?;
            }
            if self.confirms.through() >= last {
                return Ok(());
            }
            let room = WINDOW.saturating_sub(self.confirms.outstanding(self.published) as usize);
            let left = range.end - next;
            match rate {
                None if left > 0 && room >= PIPELINE.min(left) => {
                    for _ in 0..PIPELINE.min(left) {
                        let (exchange, key, body) = message(next);
                        self.wire.publish(CHANNEL, &exchange, &key, &props, &body)?;
                        next += 1;
                        self.published += 1;
                    }
                    self.wire.flush().await?;
                    continue;
                }
                Some(rate) if left > 0 && room > 0 => {
                    let due = start + Duration::from_secs_f64((next - first) as f64 / rate);
                    if Instant::now() >= due {
                        let (exchange, key, body) = message(next);
                        self.wire.publish(CHANNEL, &exchange, &key, &props, &body)?;
                        self.wire.flush().await?;
                        next += 1;
                        self.published += 1;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep_until(due.into()) => {}
                            read = self.wire.read() => read?,
                        }
                    }
                    continue;
                }
                _ => {}
            }
            self.wire.read().await?;
        }
    }

    pub async fn close(self) {
        self.wire.close().await;
    }
}

/// A connection consuming `queue` with manual acks and `prefetch` unacknowledged deliveries.
pub async fn consumer(uri: &str, queue: &str, tag: &str, prefetch: u16) -> anyhow::Result<Wire> {
    let mut wire = Wire::open(uri).await?;
    wire.open_channel(CHANNEL).await?;
    wire.consume(CHANNEL, queue, tag, prefetch).await?;
    Ok(wire)
}

/// One consumer: counts deliveries, acknowledges cumulatively every [`ACK_EVERY`] and when
/// idle, and closes its connection when the phase stops. Returns its latency samples (µs).
pub async fn consume_loop(mut wire: Wire, tally: Tally, latency: bool) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::new();
    let mut parts = Deliveries::default();
    let mut unacked = 0;
    let mut last = 0;
    loop {
        while let Some(frame) = wire.next_frame()? {
            if let Some(d) = parts.feed(&frame) {
                if latency {
                    samples.extend(flow::age_us(d.body));
                }
                last = d.tag;
                unacked += 1;
                tally.delivered();
            }
            if unacked >= ACK_EVERY {
                wire.ack(CHANNEL, last)?;
                unacked = 0;
            }
        }
        wire.flush().await?;
        match tokio::time::timeout(IDLE, wire.read()).await {
            Ok(read) => read?,
            Err(_) => {
                if unacked > 0 {
                    wire.ack(CHANNEL, last)?;
                    wire.flush().await?;
                    unacked = 0;
                }
                if tally.stopping() {
                    break;
                }
            }
        }
    }
    wire.close().await;
    Ok(samples)
}

/// RabbitMQ's W4 workaround (see `amqp::router_service`) on one connection: channel 1
/// consumes `compare.w4.inbox`, channel 2 republishes with confirms, and an inbox delivery is
/// acknowledged once all of its outputs are confirmed.
pub async fn router_service(
    uri: &str,
    tally: Tally,
) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<u64>>>> {
    const OUT: u16 = 2;
    let mut wire = Wire::open(uri).await?;
    wire.open_channel(OUT).await?;
    wire.confirm_select(OUT).await?;
    wire.open_channel(CHANNEL).await?;
    wire.consume(CHANNEL, "compare.w4.inbox", "router", 1000)
        .await?;
    Ok(tokio::spawn(async move {
        let props = properties();
        let mut parts = Deliveries::default();
        let mut confirms = Confirms::default();
        let mut published = 0u64;
        // (inbox delivery tag, tag of its last output), in delivery order.
        let mut waiting: VecDeque<(u64, u64)> = VecDeque::new();
        loop {
            while let Some(frame) = wire.next_frame()? {
                if frame.channel_id() == OUT {
                    confirms.apply(&frame)?;
                } else if let Some(d) = parts.feed(&frame) {
                    let tag = d.tag;
                    for (queue, body) in flow::json_route(d.body).map_err(anyhow::Error::msg)? {
                        wire.publish(OUT, "", &format!("compare.{queue}"), &props, &body)?;
                        published += 1;
                    }
                    waiting.push_back((tag, published));
                }
            }
            let mut done = None;
            while let Some(&(tag, last)) = waiting.front() {
                if last > confirms.through() {
                    break;
                }
                done = Some(tag);
                waiting.pop_front();
            }
            if let Some(tag) = done {
                wire.ack(CHANNEL, tag)?;
            }
            wire.flush().await?;
            match tokio::time::timeout(IDLE, wire.read()).await {
                Ok(read) => read?,
                Err(_) if tally.stopping() && waiting.is_empty() => break,
                Err(_) => {}
            }
        }
        wire.close().await;
        Ok(Vec::new())
    }))
}
