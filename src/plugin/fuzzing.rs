//! Fuzzing entry point for the host side of plugin results (the `plugin_verdict` cargo-fuzz
//! target and its regression test). Not part of the API.
//!
//! A plugin is untrusted code, so what it returns is hostile input: the host measures it
//! against the output limit (`marshal::wit_verdict_size`) and converts it
//! (`marshal::verdict_from_wit`, `marshal::message_from_wit`), the same functions a call runs.
//! The WIT types are plain structs and enums, so the target builds them straight from the
//! fuzz bytes; no component runs.

use super::bindings::wit;
use super::marshal::{self, InvalidOutput};
use super::types::{RouteVerdict, Target};
use crate::message::fuzzing::{same, same_value, Input};
use crate::message::{FieldValue, Message, Properties, MAX_NESTING};

/// The first byte picks a router's verdict (`% 2 == 0`) or a transform's message; the rest
/// builds it. Properties:
/// - nothing panics;
/// - the size the output limit is checked against covers every byte the result carries;
/// - the conversion fails exactly when the result is invalid (an empty message id, a nested
///   header that is not a MessagePack table or array, or nests deeper than `MAX_NESTING`),
///   with a typed error naming the cause;
/// - what converts keeps every field: targets, delays, ids, properties, bodies, and for each
///   header name the last value the plugin gave (as the WIT contract says).
pub fn plugin_verdict(data: &[u8]) {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    let mut input = Input::new(rest);
    if first % 2 == 0 {
        check_verdict(verdict(&mut input));
    } else {
        check_message(wit_message(&mut input));
    }
}

fn check_verdict(v: wit::Verdict) {
    // As a call lifts it (fiber calls convert the generated type the same way).
    let lifted = super::lifted::Verdict::from(v.clone());
    let size = marshal::wit_verdict_size(&lifted);
    let carried = verdict_bytes(&v);
    assert!(
        size >= carried,
        "the output limit counts {size} bytes of a verdict carrying {carried}"
    );
    let expected = verdict_problem(&v);
    match (marshal::verdict_from_wit(lifted), expected) {
        (Ok(converted), None) => check_converted_verdict(&v, &converted),
        (Err(got), Some(want)) => {
            assert_eq!(got, want, "the error names another cause");
            assert!(!got.to_string().is_empty());
        }
        (Ok(converted), Some(want)) => panic!("{v:?} is invalid ({want}) but became {converted:?}"),
        (Err(got), None) => panic!("{v:?} is valid but was refused: {got}"),
    }
}

fn check_message(m: wit::Message) {
    let size = marshal::wit_message_size(&m);
    let carried = message_bytes(&m);
    assert!(
        size >= carried,
        "the output limit counts {size} bytes of a message carrying {carried}"
    );
    match (marshal::message_from_wit(m.clone()), message_problem(&m)) {
        (Ok(converted), None) => check_converted_message(&m, &converted),
        (Err(got), Some(want)) => assert_eq!(got, want, "the error names another cause"),
        (Ok(converted), Some(want)) => panic!("{m:?} is invalid ({want}) but became {converted:?}"),
        (Err(got), None) => panic!("{m:?} is valid but was refused: {got}"),
    }
}

fn check_converted_verdict(v: &wit::Verdict, converted: &RouteVerdict) {
    match (v, converted) {
        (wit::Verdict::Drop, RouteVerdict::Drop) => {}
        (wit::Verdict::DeadLetter(a), RouteVerdict::DeadLetter { reason }) => assert_eq!(a, reason),
        (wit::Verdict::Deliver(list), RouteVerdict::Deliver(dests)) => {
            assert_eq!(list.len(), dests.len());
            for (d, got) in list.iter().zip(dests) {
                let target = match &d.target {
                    wit::Target::Queue(q) => Target::Queue(q.clone()),
                    wit::Target::Exchange(x) => Target::Exchange {
                        name: x.name.clone(),
                        routing_key: x.routing_key.clone(),
                    },
                };
                assert_eq!(got.target, target);
                assert_eq!(got.delay_ms, d.delay_ms);
                match (&d.message, &got.message) {
                    (None, None) => {}
                    (Some(m), Some(c)) => check_converted_message(m, c),
                    _ => panic!("a replacement message appeared or vanished: {d:?}"),
                }
            }
        }
        _ => panic!("{v:?} became {converted:?}"),
    }
}

/// `converted` holds what `m` said; sent back to a plugin and returned unchanged, it converts
/// to itself (what a pass-through transform relies on).
fn check_converted_message(m: &wit::Message, converted: &Message) {
    assert_eq!(converted.id.as_str(), m.id);
    assert_eq!(converted.body.as_ref(), m.body.as_slice());
    assert!(
        same_properties(&converted.properties, &m.properties),
        "{:?} for {:?}",
        converted.properties,
        m.properties
    );
    for (name, value) in &converted.headers {
        let last = m.headers.iter().rev().find(|(n, _)| n == name);
        let Some((_, given)) = last else {
            panic!("header {name:?} appeared from nowhere");
        };
        let given = nested_value(given).unwrap_or_else(|| plain_value(given));
        assert!(
            same_value(value, &given),
            "header {name:?}: {value:?} for {given:?}"
        );
    }
    let names: std::collections::BTreeSet<_> = m.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), converted.headers.len(), "a header was lost");
    let back = marshal::message_to_wit(converted);
    match marshal::message_from_wit(back) {
        Ok(again) => assert!(
            same(&again, converted),
            "{converted:?} came back as {again:?}"
        ),
        Err(e) => panic!("the host's own rendering of {converted:?} is refused: {e}"),
    }
}

/// Field by field (the WIT types have no `PartialEq`).
fn same_properties(p: &Properties, w: &wit::Properties) -> bool {
    p.content_type == w.content_type
        && p.content_encoding == w.content_encoding
        && p.persistent == w.persistent
        && p.priority == w.priority
        && p.correlation_id == w.correlation_id
        && p.reply_to == w.reply_to
        && p.expiration_ms == w.expiration_ms
        && p.timestamp == w.timestamp
        && p.kind == w.kind
        && p.user_id == w.user_id
        && p.app_id == w.app_id
}

/// The value a non-nested WIT header stands for (the conversion's expected result, written
/// independently of `marshal`).
fn plain_value(v: &wit::HeaderValue) -> FieldValue {
    use wit::HeaderValue as H;
    match v {
        H::Void => FieldValue::Void,
        H::Boolean(b) => FieldValue::Bool(*b),
        H::Int8(x) => FieldValue::I8(*x),
        H::Uint8(x) => FieldValue::U8(*x),
        H::Int16(x) => FieldValue::I16(*x),
        H::Uint16(x) => FieldValue::U16(*x),
        H::Int32(x) => FieldValue::I32(*x),
        H::Uint32(x) => FieldValue::U32(*x),
        H::Int64(x) => FieldValue::I64(*x),
        H::Uint64(x) => FieldValue::U64(*x),
        H::Float32(x) => FieldValue::F32(*x),
        H::Float64(x) => FieldValue::F64(*x),
        H::Decimal(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        H::Text(s) => FieldValue::String(s.clone()),
        H::Bytes(b) => FieldValue::Bytes(b.clone().into()),
        H::Timestamp(t) => FieldValue::Timestamp(*t),
        H::Nested(_) => FieldValue::Void,
    }
}

/// The table or array a `nested` header holds, if it holds one.
fn nested_value(v: &wit::HeaderValue) -> Option<FieldValue> {
    let wit::HeaderValue::Nested(bytes) = v else {
        return None;
    };
    match marshal::decode_nested(bytes) {
        Ok(v @ (FieldValue::Table(_) | FieldValue::Array(_))) if v.nesting() <= MAX_NESTING => {
            Some(v)
        }
        _ => None,
    }
}

/// Why `m` is invalid, decided independently of `marshal`: the first problem in field order.
fn message_problem(m: &wit::Message) -> Option<InvalidOutput> {
    if m.id.is_empty() {
        return Some(InvalidOutput::EmptyId);
    }
    m.headers.iter().find_map(|(name, v)| match v {
        wit::HeaderValue::Nested(bytes) if nested_value(v).is_none() => {
            Some(match marshal::decode_nested(bytes) {
                Ok(v @ (FieldValue::Table(_) | FieldValue::Array(_))) => {
                    InvalidOutput::NestedTooDeep {
                        name: name.clone(),
                        depth: v.nesting(),
                    }
                }
                Ok(_) => InvalidOutput::NestedNotContainer { name: name.clone() },
                Err(e) => InvalidOutput::NestedCorrupt {
                    name: name.clone(),
                    cause: e.to_string(),
                },
            })
        }
        _ => None,
    })
}

fn verdict_problem(v: &wit::Verdict) -> Option<InvalidOutput> {
    let wit::Verdict::Deliver(list) = v else {
        return None;
    };
    list.iter().enumerate().find_map(|(index, d)| {
        let problem = message_problem(d.message.as_ref()?)?;
        Some(InvalidOutput::Destination {
            index,
            source: Box::new(problem),
        })
    })
}

/// Bytes of every variable-length field in `m`.
fn message_bytes(m: &wit::Message) -> usize {
    let p = &m.properties;
    let props: usize = [
        &p.content_type,
        &p.content_encoding,
        &p.correlation_id,
        &p.reply_to,
        &p.kind,
        &p.user_id,
        &p.app_id,
    ]
    .iter()
    .filter_map(|s| s.as_ref().map(String::len))
    .sum();
    let headers: usize = m
        .headers
        .iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    wit::HeaderValue::Text(s) => s.len(),
                    wit::HeaderValue::Bytes(b) | wit::HeaderValue::Nested(b) => b.len(),
                    _ => 0,
                }
        })
        .sum();
    m.id.len() + m.body.len() + props + headers
}

fn verdict_bytes(v: &wit::Verdict) -> usize {
    match v {
        wit::Verdict::Drop => 0,
        wit::Verdict::DeadLetter(reason) => reason.len(),
        wit::Verdict::Deliver(list) => list
            .iter()
            .map(|d| {
                let target = match &d.target {
                    wit::Target::Queue(q) => q.len(),
                    wit::Target::Exchange(x) => x.name.len() + x.routing_key.len(),
                };
                target + d.message.as_ref().map_or(0, message_bytes)
            })
            .sum(),
    }
}

fn verdict(input: &mut Input<'_>) -> wit::Verdict {
    match input.byte() % 3 {
        0 => wit::Verdict::Drop,
        1 => wit::Verdict::DeadLetter(input.string(64)),
        _ => {
            let n = input.byte() % 5;
            wit::Verdict::Deliver((0..n).map(|_| destination(input)).collect())
        }
    }
}

fn destination(input: &mut Input<'_>) -> wit::Destination {
    let target = if input.bool() {
        wit::Target::Queue(input.string(32))
    } else {
        wit::Target::Exchange(wit::ExchangeTarget {
            name: input.string(32),
            routing_key: input.string(32),
        })
    };
    wit::Destination {
        target,
        message: input.option(wit_message),
        delay_ms: input.option(Input::u64),
    }
}

/// A message as a plugin could return it: any id (empty included), header names repeated,
/// nested headers either real tables and arrays or raw bytes.
fn wit_message(input: &mut Input<'_>) -> wit::Message {
    let id = input.string(32);
    let properties = marshal::properties_to_wit(&crate::message::fuzzing::properties(input));
    let n = input.byte() % 6;
    let headers = (0..n)
        .map(|_| {
            // Few distinct names, so duplicates are common.
            let name = match input.byte() % 4 {
                0 => input.string(16),
                k => ["a", "b", "x-death"][usize::from(k) - 1].to_owned(),
            };
            (name, header_value(input))
        })
        .collect();
    wit::Message {
        id,
        properties,
        headers,
        body: input.bytes(255).to_vec(),
    }
}

fn header_value(input: &mut Input<'_>) -> wit::HeaderValue {
    match input.byte() % 4 {
        // Raw bytes: mostly not MessagePack, or MessagePack of the wrong shape.
        0 => wit::HeaderValue::Nested(input.bytes(64).to_vec()),
        // Whatever the host would send for a value of any type (nested ones as MessagePack).
        _ => marshal::value_to_wit(&crate::message::fuzzing::value(input, 0)),
    }
}
