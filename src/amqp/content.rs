//! Content header frames without amq-protocol's intermediate values: an outgoing message's,
//! encoded straight from a [`Message`], and an incoming publish's, parsed straight into message
//! parts (`parse`).
//!
//! Why: every delivery carries one, and going through amq-protocol means building an
//! `AMQPProperties` and a `FieldTable` (a string allocation per property and per header name)
//! only to serialise them. This writes the same bytes from the message itself: a test checks
//! them against amq-protocol's encoding of [`properties_to_amqp`](super::convert::properties_to_amqp)
//! for every property and header type. What [`short`](super::convert::short) would truncate (a
//! string over 255 bytes where AMQP wants a short string) is left to that slower path.

use std::borrow::Borrow;

use super::codec::{FRAME_END, FRAME_HEADER};
use crate::message::{FieldValue, Message};

mod parse;

pub use parse::{parse_header, Header, ParsedHeader};

/// The `basic` class, the only one with content.
pub const CLASS_BASIC: u16 = 60;

/// Append the content header frame for `message` on `channel` to `out`. `false` (with `out`
/// as it was) when the message needs the general path.
pub fn encode_header(channel: u16, message: &Message, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if write_header(channel, message, out).is_none() {
        out.truncate(start);
        return false;
    }
    true
}

fn write_header(channel: u16, m: &Message, out: &mut Vec<u8>) -> Option<()> {
    let p = &m.properties;
    out.push(FRAME_HEADER);
    out.extend_from_slice(&channel.to_be_bytes());
    let size_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&CLASS_BASIC.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // weight
    out.extend_from_slice(&(m.body.len() as u64).to_be_bytes());
    // Property flags, bit 15 first, in the order the values follow.
    let present = [
        p.content_type.is_some(),
        p.content_encoding.is_some(),
        m.has_headers(),
        true, // delivery-mode
        p.priority.is_some(),
        p.correlation_id.is_some(),
        p.reply_to.is_some(),
        p.expiration_ms.is_some(),
        true, // message-id
        p.timestamp.is_some(),
        p.kind.is_some(),
        p.user_id.is_some(),
        p.app_id.is_some(),
    ];
    let flags = present
        .iter()
        .enumerate()
        .filter(|(_, &on)| on)
        .fold(0u16, |f, (i, _)| f | 1 << (15 - i));
    out.extend_from_slice(&flags.to_be_bytes());
    opt_short(out, &p.content_type)?;
    opt_short(out, &p.content_encoding)?;
    if m.has_headers() {
        table(out, m.shown_headers())?;
    }
    out.push(if p.persistent { 2 } else { 1 });
    if let Some(v) = p.priority {
        out.push(v);
    }
    opt_short(out, &p.correlation_id)?;
    opt_short(out, &p.reply_to)?;
    if let Some(v) = p.expiration_ms {
        short(out, &v.to_string())?;
    }
    short(out, m.id.as_str())?;
    if let Some(v) = p.timestamp {
        out.extend_from_slice(&v.to_be_bytes());
    }
    opt_short(out, &p.kind)?;
    opt_short(out, &p.user_id)?;
    opt_short(out, &p.app_id)?;
    let size = u32::try_from(out.len() - size_at - 4).ok()?;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.push(FRAME_END);
    Some(())
}

fn opt_short(out: &mut Vec<u8>, s: &Option<String>) -> Option<()> {
    match s {
        Some(s) => short(out, s),
        None => Some(()),
    }
}

fn short(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.push(u8::try_from(s.len()).ok()?);
    out.extend_from_slice(s.as_bytes());
    Some(())
}

fn long(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    out.extend_from_slice(&u32::try_from(bytes.len()).ok()?.to_be_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

/// A length-prefixed run written by `f`.
fn sized(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>) -> Option<()>) -> Option<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    f(out)?;
    let len = u32::try_from(out.len() - at - 4).ok()?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Some(())
}

fn table<'a, V: Borrow<FieldValue>>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (&'a str, V)>,
) -> Option<()> {
    sized(out, |out| {
        entries.into_iter().try_for_each(|(k, v)| {
            short(out, k)?;
            value(out, v.borrow())
        })
    })
}

/// A tagged field value, with amq-protocol's tags (as [`value_to_amqp`] maps our types).
///
/// [`value_to_amqp`]: super::convert::value_to_amqp
fn value(out: &mut Vec<u8>, v: &FieldValue) -> Option<()> {
    match v {
        FieldValue::Void => out.push(b'V'),
        FieldValue::Bool(b) => out.extend_from_slice(&[b't', u8::from(*b)]),
        FieldValue::I8(x) => out.extend_from_slice(&[b'b', x.to_be_bytes()[0]]),
        FieldValue::U8(x) => out.extend_from_slice(&[b'B', *x]),
        FieldValue::I16(x) => tagged(out, b's', &x.to_be_bytes()),
        FieldValue::U16(x) => tagged(out, b'u', &x.to_be_bytes()),
        FieldValue::I32(x) => tagged(out, b'I', &x.to_be_bytes()),
        FieldValue::U32(x) => tagged(out, b'i', &x.to_be_bytes()),
        FieldValue::I64(x) => tagged(out, b'l', &x.to_be_bytes()),
        FieldValue::U64(x) => match i64::try_from(*x) {
            Ok(i) => tagged(out, b'l', &i.to_be_bytes()),
            Err(_) => {
                out.push(b'S');
                return long(out, x.to_string().as_bytes());
            }
        },
        FieldValue::F32(x) => tagged(out, b'f', &x.to_be_bytes()),
        FieldValue::F64(x) => tagged(out, b'd', &x.to_be_bytes()),
        FieldValue::Decimal { scale, value } => {
            out.extend_from_slice(&[b'D', *scale]);
            out.extend_from_slice(&value.to_be_bytes());
        }
        FieldValue::String(s) => {
            out.push(b'S');
            return long(out, s.as_bytes());
        }
        FieldValue::Bytes(b) => {
            out.push(b'x');
            return long(out, b);
        }
        FieldValue::Timestamp(t) => tagged(out, b'T', &t.to_be_bytes()),
        FieldValue::Table(t) => {
            out.push(b'F');
            return table(out, t.iter().map(|(k, v)| (k.as_str(), v)));
        }
        FieldValue::Array(a) => {
            out.push(b'A');
            return sized(out, |out| a.iter().try_for_each(|v| value(out, v)));
        }
    }
    Some(())
}

fn tagged(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
