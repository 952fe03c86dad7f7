//! The four workloads' shapes: which messages they publish and which queues consume them.
//! Broker-neutral: each driver maps a flow onto its own exchanges, subjects and streams.

use std::sync::OnceLock;
use std::time::Instant;

/// Publisher confirms (or JetStream publish acks) in flight per publisher.
pub const WINDOW: usize = 1000;
/// Publishes an AMQP publisher hands its client at once (see `amqp::Amqp::publish`).
pub const PIPELINE: usize = 64;
/// Consumers acknowledge cumulatively every this many deliveries (and when idle for 20 ms).
pub const ACK_EVERY: usize = 64;
/// Message body size.
pub const BODY: usize = 1024;
/// Regions of W2: one queue each, plus `analytics` = 10 queues, each message lands in 2.
pub const W2_REGIONS: usize = 9;
/// Regions of W4 (`orders.<region>`); every 5th order is large (also to `orders.large`).
pub const W4_REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Durable point-to-point: one queue, one consumer (prefetch 1000).
    W1,
    /// Content-based fan-out to 2 of 10 queues.
    W2,
    /// Competing consumers: one queue, four consumers.
    W3,
    /// Routing on fields of the JSON body.
    W4,
}

/// A queue a flow consumes from: its name, how many consumers, each one's prefetch.
#[derive(Debug, Clone)]
pub struct Sink {
    pub queue: String,
    pub consumers: usize,
    pub prefetch: u16,
}

fn sink(queue: impl Into<String>, consumers: usize, prefetch: u16) -> Sink {
    Sink {
        queue: queue.into(),
        consumers,
        prefetch,
    }
}

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Flow::W1 => "W1 point-to-point",
            Flow::W2 => "W2 fan-out 2 of 10",
            Flow::W3 => "W3 competing consumers",
            Flow::W4 => "W4 JSON-body routing",
        }
    }

    pub fn sinks(self) -> Vec<Sink> {
        match self {
            Flow::W1 => vec![sink("w1", 1, 1000)],
            Flow::W2 => {
                let mut v: Vec<Sink> = (0..W2_REGIONS)
                    .map(|r| sink(format!("orders.r{r}"), 1, 500))
                    .collect();
                v.push(sink("analytics", 1, 500));
                v
            }
            Flow::W3 => vec![sink("w3", 4, 250)],
            Flow::W4 => {
                let mut v: Vec<Sink> = W4_REGIONS
                    .iter()
                    .map(|r| sink(format!("orders.{r}"), 1, 500))
                    .collect();
                v.push(sink("orders.large", 1, 500));
                v.push(sink("analytics", 1, 500));
                v
            }
        }
    }

    /// Deliveries that `n` published messages make.
    pub fn deliveries(self, n: usize) -> usize {
        match self {
            Flow::W1 | Flow::W3 => n,
            Flow::W2 => 2 * n,
            Flow::W4 => 2 * n + (0..n).filter(|i| is_large(*i)).count(),
        }
    }

    /// Message `i`: its routing key (the content a topic exchange or subject can see; for W4
    /// nothing, the decision needs the body) and its body.
    pub fn message(self, i: usize) -> (String, Vec<u8>) {
        match self {
            Flow::W1 | Flow::W3 => (String::new(), vec![b'x'; BODY]),
            Flow::W2 => {
                let region = format!("r{}", i % W2_REGIONS);
                let body = order(i, &region, 250.0);
                (format!("orders.{region}"), body)
            }
            Flow::W4 => {
                let region = W4_REGIONS[i % W4_REGIONS.len()];
                let amount = if is_large(i) { 2500.0 } else { 250.0 };
                (String::new(), order(i, region, amount))
            }
        }
    }
}

fn is_large(i: usize) -> bool {
    i.is_multiple_of(5)
}

/// A JSON order padded to [`BODY`] bytes (the shape `plugins/json-router` reads).
fn order(i: usize, region: &str, amount: f64) -> Vec<u8> {
    let head = format!(
        r#"{{"id":"o{i}","region":"{region}","amount":{amount},"customer":{{"id":"c{}","tier":"gold"}},"items":[{{"sku":"A-1","qty":2}},{{"sku":"B-7","qty":1}}],"note":""#,
        i % 997
    );
    let pad = BODY.saturating_sub(head.len() + 2);
    let mut body = head.into_bytes();
    body.extend(std::iter::repeat_n(b'.', pad));
    body.extend_from_slice(b"\"}");
    body
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Writes the send time into the first 8 bytes of a W1 body (publisher and consumer share
/// this process, so one monotonic clock measures publish → receive).
pub fn stamp(body: &mut [u8]) {
    let nanos = epoch().elapsed().as_nanos() as u64;
    body[..8].copy_from_slice(&nanos.to_le_bytes());
}

/// Microseconds since the stamp in `body`.
pub fn age_us(body: &[u8]) -> Option<u64> {
    let sent = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let now = epoch().elapsed().as_nanos() as u64;
    Some(now.saturating_sub(sent) / 1000)
}

/// The routing decision of `plugins/json-router` (threshold 1000), made by hand: what the
/// RabbitMQ workaround's router service does for W4. Returns (queue, body) pairs.
pub fn json_route(body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let order: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let region = order
        .get("region")
        .and_then(serde_json::Value::as_str)
        .ok_or("order has no region")?;
    let amount = order
        .get("amount")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    let mut out = vec![(format!("orders.{region}"), body.to_vec())];
    if amount >= 1000.0 {
        out.push(("orders.large".to_string(), body.to_vec()));
    }
    let slim = serde_json::json!({"id": order.get("id"), "region": region, "amount": amount});
    out.push(("analytics".to_string(), slim.to_string().into_bytes()));
    Ok(out)
}
