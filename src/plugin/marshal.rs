//! Message ⇄ WIT conversion.
//!
//! Headers cross as `list<tuple<string, header-value>>` with exact integer widths, so a message
//! that passes through a transform unchanged comes out equal to what went in. Nested tables and
//! arrays (which WIT cannot express: no recursive types) travel as `nested(bytes)` in the
//! MessagePack encoding of the `FieldValue`, opaque to the plugin.

use bytes::Bytes;

use super::bindings::wit;
use super::lifted;
use super::types::{Destination, RouteContext, RouteVerdict, Target};
use crate::message::{FieldValue, Headers, Lineage, Message, Properties, MAX_NESTING};

pub(crate) fn message_to_wit(msg: &Message) -> wit::Message {
    wit::Message {
        id: msg.id.as_str().to_owned(),
        properties: properties_to_wit(&msg.properties),
        headers: msg
            .shown_headers()
            .map(|(k, v)| (k.to_owned(), value_to_wit(&v)))
            .collect(),
        body: msg.body.to_vec(),
    }
}

pub(crate) fn context_to_wit(ctx: &RouteContext) -> wit::RouteContext {
    wit::RouteContext {
        exchange: ctx.exchange.clone(),
        routing_key: ctx.routing_key.clone(),
        delivery_count: ctx.delivery_count,
        source: ctx.source.clone(),
    }
}

pub(crate) fn properties_to_wit(p: &Properties) -> wit::Properties {
    wit::Properties {
        content_type: p.content_type.clone(),
        content_encoding: p.content_encoding.clone(),
        persistent: p.persistent,
        priority: p.priority,
        correlation_id: p.correlation_id.clone(),
        reply_to: p.reply_to.clone(),
        expiration_ms: p.expiration_ms,
        timestamp: p.timestamp,
        kind: p.kind.clone(),
        user_id: p.user_id.clone(),
        app_id: p.app_id.clone(),
    }
}

fn properties_from_wit(p: wit::Properties) -> Properties {
    Properties {
        content_type: p.content_type,
        content_encoding: p.content_encoding,
        persistent: p.persistent,
        priority: p.priority,
        correlation_id: p.correlation_id,
        reply_to: p.reply_to,
        expiration_ms: p.expiration_ms,
        timestamp: p.timestamp,
        kind: p.kind,
        user_id: p.user_id,
        app_id: p.app_id,
    }
}

pub(crate) fn value_to_wit(v: &FieldValue) -> wit::HeaderValue {
    use wit::HeaderValue as H;
    match v {
        FieldValue::Void => H::Void,
        FieldValue::Bool(b) => H::Boolean(*b),
        FieldValue::I8(x) => H::Int8(*x),
        FieldValue::U8(x) => H::Uint8(*x),
        FieldValue::I16(x) => H::Int16(*x),
        FieldValue::U16(x) => H::Uint16(*x),
        FieldValue::I32(x) => H::Int32(*x),
        FieldValue::U32(x) => H::Uint32(*x),
        FieldValue::I64(x) => H::Int64(*x),
        FieldValue::U64(x) => H::Uint64(*x),
        FieldValue::F32(x) => H::Float32(*x),
        FieldValue::F64(x) => H::Float64(*x),
        FieldValue::Decimal { scale, value } => H::Decimal(wit::Decimal {
            scale: *scale,
            value: *value,
        }),
        FieldValue::String(s) => H::Text(s.clone()),
        FieldValue::Bytes(b) => H::Bytes(b.to_vec()),
        FieldValue::Timestamp(t) => H::Timestamp(*t),
        nested @ (FieldValue::Table(_) | FieldValue::Array(_)) => {
            H::Nested(rmp_serde::to_vec(nested).expect("FieldValue always encodes"))
        }
    }
}

/// Why a plugin's result is not a message or verdict the host can use. Rendered into
/// [`super::PluginError::InvalidOutput`]; typed so that tests and the fuzz target can tell the
/// causes apart, and so the text names the header or destination at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOutput {
    #[error("message id is empty")]
    EmptyId,
    #[error("header {name:?}: nested header value is not a table or array")]
    NestedNotContainer { name: String },
    #[error("header {name:?}: nested header value does not decode: {cause}")]
    NestedCorrupt { name: String, cause: String },
    #[error("header {name:?}: nests {depth} levels deep; at most {MAX_NESTING} are accepted")]
    NestedTooDeep { name: String, depth: usize },
    #[error("destination {index}: {source}")]
    Destination {
        index: usize,
        source: Box<InvalidOutput>,
    },
}

fn value_from_wit(name: &str, v: wit::HeaderValue) -> Result<FieldValue, InvalidOutput> {
    use wit::HeaderValue as H;
    Ok(match v {
        H::Void => FieldValue::Void,
        H::Boolean(b) => FieldValue::Bool(b),
        H::Int8(x) => FieldValue::I8(x),
        H::Uint8(x) => FieldValue::U8(x),
        H::Int16(x) => FieldValue::I16(x),
        H::Uint16(x) => FieldValue::U16(x),
        H::Int32(x) => FieldValue::I32(x),
        H::Uint32(x) => FieldValue::U32(x),
        H::Int64(x) => FieldValue::I64(x),
        H::Uint64(x) => FieldValue::U64(x),
        H::Float32(x) => FieldValue::F32(x),
        H::Float64(x) => FieldValue::F64(x),
        H::Decimal(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        H::Text(s) => FieldValue::String(s),
        H::Bytes(b) => FieldValue::Bytes(Bytes::from(b)),
        H::Timestamp(t) => FieldValue::Timestamp(t),
        H::Nested(bytes) => match decode_nested(&bytes) {
            Ok(v @ (FieldValue::Table(_) | FieldValue::Array(_))) => match v.nesting() {
                depth if depth > MAX_NESTING => {
                    return Err(InvalidOutput::NestedTooDeep {
                        name: name.to_owned(),
                        depth,
                    })
                }
                _ => v,
            },
            Ok(_) => {
                return Err(InvalidOutput::NestedNotContainer {
                    name: name.to_owned(),
                })
            }
            Err(e) => {
                return Err(InvalidOutput::NestedCorrupt {
                    name: name.to_owned(),
                    cause: e.to_string(),
                })
            }
        },
    })
}

/// The MessagePack in a `nested` header. The recursion is bounded (two MessagePack levels per
/// nesting level, plus slack): the bytes are the plugin's, and rmp-serde's default bound is
/// deep enough to overflow a thread's stack.
pub(crate) fn decode_nested(bytes: &[u8]) -> Result<FieldValue, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(2 * MAX_NESTING + 8);
    serde::Deserialize::deserialize(&mut de)
}

/// A message returned by a plugin. Later duplicates of a header name win.
///
/// Invariant kept: the id is never empty (an empty id is an invalid result).
pub(crate) fn message_from_wit(m: wit::Message) -> Result<Message, InvalidOutput> {
    if m.id.is_empty() {
        return Err(InvalidOutput::EmptyId);
    }
    let mut headers = Headers::new();
    for (name, value) in m.headers {
        let value = value_from_wit(&name, value)?;
        headers.insert(name, value);
    }
    Ok(Message {
        id: m.id.into(),
        properties: properties_from_wit(m.properties),
        headers,
        body: Bytes::from(m.body),
        lineage: Lineage::default(),
    })
}

/// A router's lifted verdict as the broker's; a replacement message is checked like a
/// transform's output. Destinations convert in place (`lifted::Destination` and
/// [`Destination`] have the same size).
pub(crate) fn verdict_from_wit(v: lifted::Verdict) -> Result<RouteVerdict, InvalidOutput> {
    Ok(match v {
        lifted::Verdict::Drop => RouteVerdict::Drop,
        lifted::Verdict::DeadLetter(reason) => RouteVerdict::DeadLetter { reason },
        lifted::Verdict::Deliver(list) => RouteVerdict::Deliver(
            list.into_iter()
                .enumerate()
                .map(|(index, d)| {
                    let at = |e| InvalidOutput::Destination {
                        index,
                        source: Box::new(e),
                    };
                    Ok(Destination {
                        target: match d.target {
                            wit::Target::Queue(q) => Target::Queue(q),
                            wit::Target::Exchange(x) => Target::Exchange {
                                name: x.name,
                                routing_key: x.routing_key,
                            },
                        },
                        message: match d.message {
                            Some(m) => Some(Box::new(message_from_wit(*m.0).map_err(at)?)),
                            None => None,
                        },
                        delay_ms: d.delay_ms,
                    })
                })
                .collect::<Result<_, InvalidOutput>>()?,
        ),
    })
}

/// Bytes a returned WIT message occupies, roughly (what the output limit counts). Counts every
/// variable-length field, properties included: whatever is not counted here, a plugin could
/// return in any size past `max_output_bytes`.
pub(crate) fn wit_message_size(m: &wit::Message) -> usize {
    m.id.len()
        + m.body.len()
        + properties_size(&m.properties)
        + m.headers
            .iter()
            .map(|(k, v)| k.len() + value_size(v))
            .sum::<usize>()
        + 64
}

fn properties_size(p: &wit::Properties) -> usize {
    [
        &p.content_type,
        &p.content_encoding,
        &p.correlation_id,
        &p.reply_to,
        &p.kind,
        &p.user_id,
        &p.app_id,
    ]
    .iter()
    .filter_map(|s| s.as_ref())
    .map(String::len)
    .sum()
}

fn value_size(v: &wit::HeaderValue) -> usize {
    match v {
        wit::HeaderValue::Text(s) => s.len(),
        wit::HeaderValue::Bytes(b) | wit::HeaderValue::Nested(b) => b.len(),
        _ => 8,
    }
}

pub(crate) fn wit_verdict_size(v: &lifted::Verdict) -> usize {
    match v {
        lifted::Verdict::Drop => 0,
        lifted::Verdict::DeadLetter(reason) => reason.len(),
        lifted::Verdict::Deliver(list) => list
            .iter()
            .map(|d| {
                let target = match &d.target {
                    wit::Target::Queue(q) => q.len(),
                    wit::Target::Exchange(x) => x.name.len() + x.routing_key.len(),
                };
                target + d.message.as_ref().map_or(0, |m| wit_message_size(&m.0)) + 16
            })
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_value() -> Headers {
        let nested: Headers = [("inner".to_string(), FieldValue::I8(-1))]
            .into_iter()
            .collect();
        [
            ("void", FieldValue::Void),
            ("bool", FieldValue::Bool(true)),
            ("i8", FieldValue::I8(-8)),
            ("u8", FieldValue::U8(8)),
            ("i16", FieldValue::I16(-16)),
            ("u16", FieldValue::U16(16)),
            ("i32", FieldValue::I32(-32)),
            ("u32", FieldValue::U32(32)),
            ("i64", FieldValue::I64(-64)),
            ("u64", FieldValue::U64(u64::MAX)),
            ("f32", FieldValue::F32(1.5)),
            ("f64", FieldValue::F64(-2.25)),
            (
                "dec",
                FieldValue::Decimal {
                    scale: 2,
                    value: 12345,
                },
            ),
            ("str", FieldValue::String("text".into())),
            ("bytes", FieldValue::Bytes(Bytes::from_static(b"\0\x01"))),
            ("ts", FieldValue::Timestamp(1_700_000_000)),
            ("table", FieldValue::Table(nested)),
            (
                "array",
                FieldValue::Array(vec![FieldValue::U8(1), FieldValue::String("x".into())]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn messages_round_trip_with_every_header_type() {
        let mut msg = Message::new(&b"body"[..]).with_id("id-1");
        msg.headers = every_value();
        msg.properties = Properties {
            content_type: Some("application/json".into()),
            persistent: true,
            priority: Some(9),
            expiration_ms: Some(60_000),
            kind: Some("order.created".into()),
            ..Properties::default()
        };
        assert_eq!(message_from_wit(message_to_wit(&msg)).unwrap(), msg);
    }

    #[test]
    fn invalid_results_are_rejected() {
        let mut m = message_to_wit(&Message::new("x"));
        m.id.clear();
        assert_eq!(message_from_wit(m).unwrap_err(), InvalidOutput::EmptyId);
        let mut m = message_to_wit(&Message::new("x"));
        m.headers
            .push(("bad".into(), wit::HeaderValue::Nested(vec![0xc1])));
        let err = message_from_wit(m).unwrap_err();
        assert!(matches!(&err, InvalidOutput::NestedCorrupt { name, .. } if name == "bad"));
        // Deeper than the broker stores: refused by name and depth, never decoded unbounded.
        let deep = (0..=MAX_NESTING).fold(FieldValue::Void, |v, _| FieldValue::Array(vec![v]));
        let mut m = message_to_wit(&Message::new("x"));
        m.headers.push(("deep".into(), value_to_wit(&deep)));
        assert_eq!(
            message_from_wit(m).unwrap_err(),
            InvalidOutput::NestedTooDeep {
                name: "deep".into(),
                depth: MAX_NESTING + 1
            }
        );
        assert!(err.to_string().contains("\"bad\": nested"), "{err}");
    }

    #[test]
    fn verdicts_convert_with_exchanges_delays_and_replacements() {
        let replacement = message_to_wit(&Message::new("slim").with_id("r"));
        let v: lifted::Verdict = wit::Verdict::Deliver(vec![
            wit::Destination {
                target: wit::Target::Exchange(wit::ExchangeTarget {
                    name: "x".into(),
                    routing_key: "k".into(),
                }),
                message: Some(replacement),
                delay_ms: Some(250),
            },
            wit::Destination {
                target: wit::Target::Queue("q".into()),
                message: None,
                delay_ms: None,
            },
        ])
        .into();
        assert!(wit_verdict_size(&v) > 4);
        let RouteVerdict::Deliver(list) = verdict_from_wit(v).unwrap() else {
            panic!("deliver")
        };
        assert_eq!(
            list[0].target,
            Target::Exchange {
                name: "x".into(),
                routing_key: "k".into()
            }
        );
        assert_eq!(list[0].delay_ms, Some(250));
        assert_eq!(
            list[0].message.as_ref().unwrap().body,
            Bytes::from_static(b"slim")
        );
        assert_eq!(list[1].target, Target::Queue("q".into()));
        assert_eq!(
            verdict_from_wit(wit::Verdict::DeadLetter("why".into()).into()).unwrap(),
            RouteVerdict::DeadLetter {
                reason: "why".into()
            }
        );
    }
}
