//! Dead-lettering records: RabbitMQ-compatible `x-death` headers.
//!
//! Why RabbitMQ's format: AMQP clients and tools already read it, and the AMQP layer can pass
//! the headers through untouched. `x-death` is an array of tables, most recent first; one entry
//! per (queue, reason) whose `count` grows when it happens again. Switchyard adds two keys to
//! each entry, `reason-text` and `delivery-count`, which RabbitMQ clients ignore.

use crate::message::{FieldValue, Headers, Message};

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// Delivered `max_deliveries` times without an ack.
    DeliveryLimit,
    /// Rejected or nacked without requeue.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped from the head of a full queue (overflow `drop-head`).
    MaxLen,
}

impl DeadLetterReason {
    /// The reason code, as RabbitMQ spells it.
    pub fn code(self) -> &'static str {
        match self {
            DeadLetterReason::DeliveryLimit => "delivery_limit",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::MaxLen => "maxlen",
        }
    }

    /// Human-readable explanation.
    pub fn text(self) -> &'static str {
        match self {
            DeadLetterReason::DeliveryLimit => {
                "delivered the maximum number of times without an ack"
            }
            DeadLetterReason::Rejected => "rejected by a consumer without requeue",
            DeadLetterReason::Expired => "message TTL expired before delivery",
            DeadLetterReason::MaxLen => "dropped from the head of a full queue",
        }
    }
}

/// Facts about one dead-lettering.
#[derive(Debug, Clone)]
pub struct Death<'a> {
    pub reason: DeadLetterReason,
    pub queue: &'a str,
    pub exchange: &'a str,
    pub routing_keys: &'a [String],
    pub time_ms: u64,
    pub deliveries: u32,
}

/// Record `death` in `msg`'s headers (and drop its per-message TTL, as RabbitMQ does, keeping
/// it as `original-expiration`).
pub fn record(msg: &mut Message, death: &Death<'_>) {
    let secs = death.time_ms / 1000;
    let reason = death.reason.code();
    let mut deaths = match msg.headers.remove("x-death") {
        Some(FieldValue::Array(a)) => a,
        _ => Vec::new(),
    };
    let same = |t: &Headers| {
        t.get("queue").and_then(FieldValue::as_str) == Some(death.queue)
            && t.get("reason").and_then(FieldValue::as_str) == Some(reason)
    };
    let existing = deaths
        .iter()
        .position(|v| matches!(v, FieldValue::Table(t) if same(t)));
    let mut entry = match existing.map(|i| deaths.remove(i)) {
        Some(FieldValue::Table(t)) => t,
        _ => Headers::new(),
    };
    let count = entry.get("count").and_then(FieldValue::as_i64).unwrap_or(0) + 1;
    entry.insert("count".into(), FieldValue::I64(count));
    entry.insert("reason".into(), reason.into());
    entry.insert("queue".into(), death.queue.into());
    entry.insert("time".into(), FieldValue::Timestamp(secs));
    entry.insert("exchange".into(), death.exchange.into());
    entry.insert(
        "routing-keys".into(),
        FieldValue::Array(
            death
                .routing_keys
                .iter()
                .map(|k| k.as_str().into())
                .collect(),
        ),
    );
    entry.insert("reason-text".into(), death.reason.text().into());
    entry.insert(
        "delivery-count".into(),
        FieldValue::I64(i64::from(death.deliveries)),
    );
    if let Some(exp) = msg.properties.expiration_ms.take() {
        entry.insert("original-expiration".into(), exp.to_string().into());
    }
    deaths.insert(0, FieldValue::Table(entry));
    msg.headers
        .insert("x-death".into(), FieldValue::Array(deaths));
    for (k, v) in [
        ("reason", FieldValue::from(reason)),
        ("queue", death.queue.into()),
        ("exchange", death.exchange.into()),
    ] {
        msg.headers
            .entry(format!("x-first-death-{k}"))
            .or_insert_with(|| v.clone());
        msg.headers.insert(format!("x-last-death-{k}"), v);
    }
}

/// The queue a dead-lettered message last died in (for redrive).
pub fn last_source_queue(msg: &Message) -> Option<&str> {
    msg.headers
        .get("x-last-death-queue")
        .and_then(FieldValue::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_death_counts_and_orders_like_rabbitmq() {
        let mut m = Message::new(&b"x"[..]);
        m.properties.expiration_ms = Some(60_000);
        let keys = vec!["rk".to_string()];
        let d = |reason, queue| Death {
            reason,
            queue,
            exchange: "ex",
            routing_keys: &keys,
            time_ms: 5_000,
            deliveries: 3,
        };
        record(&mut m, &d(DeadLetterReason::Expired, "a"));
        record(&mut m, &d(DeadLetterReason::Rejected, "b"));
        record(&mut m, &d(DeadLetterReason::Expired, "a"));
        let Some(FieldValue::Array(deaths)) = m.headers.get("x-death") else {
            panic!("no x-death")
        };
        assert_eq!(deaths.len(), 2);
        let FieldValue::Table(first) = &deaths[0] else {
            panic!()
        };
        assert_eq!(first["queue"], FieldValue::from("a"));
        assert_eq!(first["reason"], FieldValue::from("expired"));
        assert_eq!(first["count"], FieldValue::I64(2));
        assert_eq!(first["time"], FieldValue::Timestamp(5));
        assert_eq!(first["original-expiration"], FieldValue::from("60000"));
        assert_eq!(m.properties.expiration_ms, None);
        assert_eq!(
            m.headers["x-first-death-reason"],
            FieldValue::from("expired")
        );
        assert_eq!(last_source_queue(&m), Some("a"));
    }
}
