//! amq-protocol's wire types ⇄ Switchyard's [`Message`], [`Properties`] and [`Headers`].
//!
//! Every AMQP field-table type has a [`FieldValue`] of the same width, so a table read from a
//! client goes back out with the same type tags, with three documented exceptions:
//! - short strings (`s`, which RabbitMQ does not accept in tables) come back as long strings;
//! - a long string (`S`) that is not UTF-8 is kept as bytes and comes back as a byte array (`x`);
//! - our types with no AMQP tag: `U64` goes out as `l` (signed 64-bit; values above `i64::MAX`
//!   as a decimal string) and `U32`/`U16`/`U8` keep their AMQP tags.

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use bytes::Bytes;

use super::error::truncate;
use crate::message::{FieldValue, Headers, Lineage, Message, MessageId, Properties};

/// A short string from any string, cut at 255 bytes (never panics, unlike `From<String>`).
pub fn short(s: impl Into<String>) -> ShortString {
    let s = truncate(s.into(), 255);
    ShortString::try_new(s).unwrap_or_else(|_| ShortString::from(""))
}

pub fn value_from_amqp(v: &AMQPValue) -> FieldValue {
    match v {
        AMQPValue::Boolean(b) => FieldValue::Bool(*b),
        AMQPValue::ShortShortInt(x) => FieldValue::I8(*x),
        AMQPValue::ShortShortUInt(x) => FieldValue::U8(*x),
        AMQPValue::ShortInt(x) => FieldValue::I16(*x),
        AMQPValue::ShortUInt(x) => FieldValue::U16(*x),
        AMQPValue::LongInt(x) => FieldValue::I32(*x),
        AMQPValue::LongUInt(x) => FieldValue::U32(*x),
        AMQPValue::LongLongInt(x) => FieldValue::I64(*x),
        AMQPValue::Float(x) => FieldValue::F32(*x),
        AMQPValue::Double(x) => FieldValue::F64(*x),
        AMQPValue::DecimalValue(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => FieldValue::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => FieldValue::String(text.to_owned()),
            Err(_) => FieldValue::Bytes(Bytes::copy_from_slice(s.as_bytes())),
        },
        AMQPValue::FieldArray(a) => {
            FieldValue::Array(a.as_slice().iter().map(value_from_amqp).collect())
        }
        AMQPValue::Timestamp(t) => FieldValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => FieldValue::Table(headers_from_table(t)),
        AMQPValue::ByteArray(b) => FieldValue::Bytes(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::Void => FieldValue::Void,
    }
}

pub fn value_to_amqp(v: &FieldValue) -> AMQPValue {
    match v {
        FieldValue::Void => AMQPValue::Void,
        FieldValue::Bool(b) => AMQPValue::Boolean(*b),
        FieldValue::I8(x) => AMQPValue::ShortShortInt(*x),
        FieldValue::U8(x) => AMQPValue::ShortShortUInt(*x),
        FieldValue::I16(x) => AMQPValue::ShortInt(*x),
        FieldValue::U16(x) => AMQPValue::ShortUInt(*x),
        FieldValue::I32(x) => AMQPValue::LongInt(*x),
        FieldValue::U32(x) => AMQPValue::LongUInt(*x),
        FieldValue::I64(x) => AMQPValue::LongLongInt(*x),
        FieldValue::U64(x) => match i64::try_from(*x) {
            Ok(i) => AMQPValue::LongLongInt(i),
            Err(_) => AMQPValue::LongString(LongString::from(x.to_string())),
        },
        FieldValue::F32(x) => AMQPValue::Float(*x),
        FieldValue::F64(x) => AMQPValue::Double(*x),
        FieldValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        FieldValue::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        FieldValue::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.to_vec())),
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Table(t) => AMQPValue::FieldTable(headers_to_table(t)),
        FieldValue::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(value_to_amqp).collect::<Vec<_>>(),
        )),
    }
}

pub fn headers_from_table(t: &FieldTable) -> Headers {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_from_amqp(v)))
        .collect()
}

/// Entries in a header table, counting those of nested tables and arrays too: what a
/// message's headers cost to decode, store and route, whatever their nesting.
pub fn table_entries(t: &FieldTable) -> usize {
    fn value(v: &AMQPValue) -> usize {
        match v {
            AMQPValue::FieldTable(t) => table_entries(t),
            AMQPValue::FieldArray(a) => a.as_slice().iter().map(|v| 1 + value(v)).sum(),
            _ => 0,
        }
    }
    t.inner().values().map(|v| 1 + value(v)).sum()
}

pub fn headers_to_table(h: &Headers) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in h {
        t.insert(short(k.clone()), value_to_amqp(v));
    }
    t
}

fn opt_str(s: &Option<ShortString>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_owned())
}

/// A message from a publish's content header and body. An absent or empty `message-id` gets a
/// generated one ([`Message`]'s invariant); an `expiration` that is not a decimal number of
/// milliseconds is a 406 in RabbitMQ, reported here as `Err(text)`.
pub fn message_from_amqp(props: &BasicProperties, body: Bytes) -> Result<Message, String> {
    let expiration_ms = props
        .expiration()
        .as_ref()
        .map(|e| expiration_ms(e.as_str()))
        .transpose()?;
    let properties = Properties {
        content_type: opt_str(props.content_type()),
        content_encoding: opt_str(props.content_encoding()),
        persistent: *props.delivery_mode() == Some(2),
        priority: *props.priority(),
        correlation_id: opt_str(props.correlation_id()),
        reply_to: opt_str(props.reply_to()),
        expiration_ms,
        timestamp: *props.timestamp(),
        kind: opt_str(props.kind()),
        user_id: opt_str(props.user_id()),
        app_id: opt_str(props.app_id()),
    };
    let id = message_id(props.message_id().as_ref().map(|id| id.as_str()));
    Ok(Message {
        id,
        properties,
        headers: props
            .headers()
            .as_ref()
            .map(headers_from_table)
            .unwrap_or_default(),
        body,
        lineage: Lineage::default(),
    })
}

/// An `expiration` property as milliseconds; RabbitMQ takes only a decimal number.
pub fn expiration_ms(e: &str) -> Result<u64, String> {
    e.parse::<u64>()
        .map_err(|_| format!("invalid expiration {e:?}"))
}

/// The id of a published message: its `message-id`, or a generated one when that is absent
/// or empty.
pub fn message_id(sent: Option<&str>) -> MessageId {
    match sent {
        Some(id) if !id.is_empty() => MessageId::from(id.to_owned()),
        _ => MessageId::generate(),
    }
}

/// The content-header properties a consumer sees for `message`.
pub fn properties_to_amqp(message: &Message) -> BasicProperties {
    let p = &message.properties;
    let mut out = BasicProperties::default()
        .with_message_id(short(message.id.as_str()))
        .with_delivery_mode(if p.persistent { 2 } else { 1 });
    if let Some(v) = &p.content_type {
        out = out.with_content_type(short(v.clone()));
    }
    if let Some(v) = &p.content_encoding {
        out = out.with_content_encoding(short(v.clone()));
    }
    if message.has_headers() {
        out = out.with_headers(headers_to_table(&message.headers_shown()));
    }
    if let Some(v) = p.priority {
        out = out.with_priority(v);
    }
    if let Some(v) = &p.correlation_id {
        out = out.with_correlation_id(short(v.clone()));
    }
    if let Some(v) = &p.reply_to {
        out = out.with_reply_to(short(v.clone()));
    }
    if let Some(v) = p.expiration_ms {
        out = out.with_expiration(short(v.to_string()));
    }
    if let Some(v) = p.timestamp {
        out = out.with_timestamp(v);
    }
    if let Some(v) = &p.kind {
        out = out.with_type(short(v.clone()));
    }
    if let Some(v) = &p.user_id {
        out = out.with_user_id(short(v.clone()));
    }
    if let Some(v) = &p.app_id {
        out = out.with_app_id(short(v.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_type() -> FieldTable {
        let mut inner = FieldTable::default();
        inner.insert(short("n"), AMQPValue::LongInt(-7));
        let mut t = FieldTable::default();
        let values = [
            ("bool", AMQPValue::Boolean(true)),
            ("i8", AMQPValue::ShortShortInt(-8)),
            ("u8", AMQPValue::ShortShortUInt(8)),
            ("i16", AMQPValue::ShortInt(-16)),
            ("u16", AMQPValue::ShortUInt(16)),
            ("i32", AMQPValue::LongInt(-32)),
            ("u32", AMQPValue::LongUInt(32)),
            ("i64", AMQPValue::LongLongInt(-64)),
            ("f32", AMQPValue::Float(1.5)),
            ("f64", AMQPValue::Double(2.25)),
            (
                "dec",
                AMQPValue::DecimalValue(DecimalValue {
                    scale: 2,
                    value: 1234,
                }),
            ),
            ("str", AMQPValue::LongString(LongString::from("héllo"))),
            (
                "bytes",
                AMQPValue::ByteArray(ByteArray::from(vec![0u8, 255])),
            ),
            ("ts", AMQPValue::Timestamp(1_700_000_000)),
            ("table", AMQPValue::FieldTable(inner)),
            (
                "array",
                AMQPValue::FieldArray(FieldArray::from(vec![
                    AMQPValue::Void,
                    AMQPValue::LongString(LongString::from("x")),
                ])),
            ),
            ("void", AMQPValue::Void),
        ];
        for (k, v) in values {
            t.insert(short(k), v);
        }
        t
    }

    #[test]
    fn every_field_type_round_trips() {
        let t = every_type();
        assert_eq!(headers_to_table(&headers_from_table(&t)), t);
    }

    #[test]
    fn documented_lossy_cases() {
        let mut t = FieldTable::default();
        t.insert(short("s"), AMQPValue::ShortString(short("abc")));
        t.insert(
            short("raw"),
            AMQPValue::LongString(LongString::from(vec![0xffu8, 0])),
        );
        let back = headers_to_table(&headers_from_table(&t));
        assert_eq!(
            back.inner()["s"],
            AMQPValue::LongString(LongString::from("abc"))
        );
        assert_eq!(
            back.inner()["raw"],
            AMQPValue::ByteArray(ByteArray::from(vec![0xffu8, 0]))
        );
        let big = value_to_amqp(&FieldValue::U64(u64::MAX));
        assert_eq!(
            big,
            AMQPValue::LongString(LongString::from(u64::MAX.to_string()))
        );
    }

    #[test]
    fn properties_round_trip() {
        let props = BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_content_encoding(short("gzip"))
            .with_headers(every_type())
            .with_delivery_mode(2)
            .with_priority(5)
            .with_correlation_id(short("c-1"))
            .with_reply_to(short("replies"))
            .with_expiration(short("60000"))
            .with_message_id(short("m-1"))
            .with_timestamp(1_700_000_000)
            .with_type(short("order.created"))
            .with_user_id(short("guest"))
            .with_app_id(short("shop"));
        let msg = message_from_amqp(&props, Bytes::from_static(b"body")).unwrap();
        assert_eq!(msg.id.as_str(), "m-1");
        assert_eq!(msg.properties.expiration_ms, Some(60_000));
        assert_eq!(properties_to_amqp(&msg), props);
    }

    #[test]
    fn bad_expiration_and_missing_id() {
        let props = BasicProperties::default().with_expiration(short("soon"));
        assert!(message_from_amqp(&props, Bytes::new()).is_err());
        let msg = message_from_amqp(&BasicProperties::default(), Bytes::new()).unwrap();
        assert!(!msg.id.as_str().is_empty());
        assert_eq!(properties_to_amqp(&msg).delivery_mode(), &Some(1));
    }

    #[test]
    fn long_strings_are_cut_not_panicking() {
        assert_eq!(short("é".repeat(200)).as_str().len(), 254);
    }
}
