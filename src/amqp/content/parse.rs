//! A publish's content header parsed straight into message parts.
//!
//! Why: amq-protocol parses a header into an `AMQPProperties` and a `FieldTable` (nom
//! combinators, a string per property and per header name), which [`message_from_amqp`] then
//! converts again. This reads the payload once into what a [`Message`] holds. It accepts only
//! what it can map exactly as that path would — a test checks both paths agree on random
//! headers and random damage — and declines (`None`) everything else: unusual flags, unknown
//! value types, invalid UTF-8, trailing bytes. A declined header goes through amq-protocol,
//! whose errors (and their AMQP reply codes) stay the only ones a client sees.
//!
//! [`message_from_amqp`]: crate::amqp::convert::message_from_amqp

use amq_protocol::frame::AMQPContentHeader;
use bytes::Bytes;

use crate::amqp::convert::{expiration_ms, message_from_amqp, message_id, table_entries};
use crate::amqp::nesting::MAX_FRAME_NESTING;
use crate::amqp::reader::Reader;
use crate::message::{FieldValue, Headers, Lineage, Message, Properties};

/// A content header as [`parse_header`] read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// All but `expiration_ms`, which is checked when the message is made.
    properties: Properties,
    expiration: Option<String>,
    message_id: Option<String>,
    headers: Headers,
}

/// A publish's content header, from amq-protocol or from [`parse_header`].
#[derive(Debug)]
pub enum Header {
    Amqp(AMQPContentHeader),
    Parsed(ParsedHeader),
}

impl Header {
    pub fn class_id(&self) -> u16 {
        match self {
            Header::Amqp(h) => h.class_id,
            Header::Parsed(h) => h.class_id,
        }
    }

    pub fn body_size(&self) -> u64 {
        match self {
            Header::Amqp(h) => h.body_size,
            Header::Parsed(h) => h.body_size,
        }
    }

    /// Header entries, nested ones included (see [`table_entries`]).
    pub fn header_entries(&self) -> usize {
        match self {
            Header::Amqp(h) => h.properties.headers().as_ref().map_or(0, table_entries),
            Header::Parsed(h) => entries(&h.headers),
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Header::Amqp(h) => h.properties.user_id().as_ref().map(|s| s.as_str()),
            Header::Parsed(h) => h.properties.user_id.as_deref(),
        }
    }

    /// The message, as [`message_from_amqp`] makes it (`Err` for a bad `expiration`).
    pub fn into_message(self, body: Bytes) -> Result<Message, String> {
        let h = match self {
            Header::Amqp(h) => return message_from_amqp(&h.properties, body),
            Header::Parsed(h) => h,
        };
        let mut properties = h.properties;
        properties.expiration_ms = h.expiration.as_deref().map(expiration_ms).transpose()?;
        Ok(Message {
            id: message_id(h.message_id.as_deref()),
            properties,
            headers: h.headers,
            body,
            lineage: Lineage::default(),
        })
    }
}

fn entries(h: &Headers) -> usize {
    fn value(v: &FieldValue) -> usize {
        match v {
            FieldValue::Table(t) => entries(t),
            FieldValue::Array(a) => a.iter().map(|v| 1 + value(v)).sum(),
            _ => 0,
        }
    }
    h.values().map(|v| 1 + value(v)).sum()
}

/// Parse a content header frame's payload, or decline (see the module docs).
pub fn parse_header(payload: &[u8]) -> Option<ParsedHeader> {
    let mut r = Reader(payload);
    let class_id = r.u16()?;
    let _weight = r.u16()?;
    let body_size = r.u64()?;
    let flags = r.u16()?;
    if flags & 0b11 != 0 {
        return None; // a continuation flag word or an undefined bit
    }
    let has = |i: u16| flags & (1 << (15 - i)) != 0;
    let short = |r: &mut Reader<'_>, i| {
        if has(i) {
            r.short().map(Some)
        } else {
            Some(None)
        }
    };
    let content_type = short(&mut r, 0)?;
    let content_encoding = short(&mut r, 1)?;
    let headers = if has(2) { r.table(0)? } else { Headers::new() };
    let delivery_mode = if has(3) { Some(r.u8()?) } else { None };
    let priority = if has(4) { Some(r.u8()?) } else { None };
    let correlation_id = short(&mut r, 5)?;
    let reply_to = short(&mut r, 6)?;
    let expiration = short(&mut r, 7)?;
    let message_id = short(&mut r, 8)?;
    let timestamp = if has(9) { Some(r.u64()?) } else { None };
    let kind = short(&mut r, 10)?;
    let user_id = short(&mut r, 11)?;
    let app_id = short(&mut r, 12)?;
    let _cluster_id = short(&mut r, 13)?;
    if !r.is_empty() {
        return None;
    }
    Some(ParsedHeader {
        class_id,
        body_size,
        properties: Properties {
            content_type,
            content_encoding,
            persistent: delivery_mode == Some(2),
            priority,
            correlation_id,
            reply_to,
            expiration_ms: None,
            timestamp,
            kind,
            user_id,
            app_id,
        },
        expiration,
        message_id,
        headers,
    })
}

/// Field tables and values, on top of [`Reader`].
trait Fields {
    fn table(&mut self, depth: usize) -> Option<Headers>;
    fn value(&mut self, depth: usize) -> Option<FieldValue>;
}

impl Fields for Reader<'_> {
    fn table(&mut self, depth: usize) -> Option<Headers> {
        if depth >= MAX_FRAME_NESTING {
            return None;
        }
        let mut entries = self.sized()?;
        let mut t = Headers::new();
        while !entries.is_empty() {
            let key = entries.short()?;
            let value = entries.value(depth)?;
            t.insert(key, value);
        }
        Some(t)
    }

    /// A tagged value, mapped as `value_from_amqp` maps amq-protocol's (tags as
    /// `AMQPType::from_id` reads them).
    fn value(&mut self, depth: usize) -> Option<FieldValue> {
        Some(match self.u8()? {
            b't' => FieldValue::Bool(self.u8()? != 0),
            b'b' => FieldValue::I8(i8::from_be_bytes(self.array()?)),
            b'B' => FieldValue::U8(self.u8()?),
            b's' | b'U' => FieldValue::I16(i16::from_be_bytes(self.array()?)),
            b'u' => FieldValue::U16(self.u16()?),
            b'I' => FieldValue::I32(i32::from_be_bytes(self.array()?)),
            b'i' => FieldValue::U32(self.u32()?),
            b'l' | b'L' => FieldValue::I64(i64::from_be_bytes(self.array()?)),
            b'f' => FieldValue::F32(f32::from_be_bytes(self.array()?)),
            b'd' => FieldValue::F64(f64::from_be_bytes(self.array()?)),
            b'D' => FieldValue::Decimal {
                scale: self.u8()?,
                value: self.u32()?,
            },
            b'S' => {
                let bytes = self.sized()?.0;
                match std::str::from_utf8(bytes) {
                    Ok(text) => FieldValue::String(text.to_owned()),
                    Err(_) => FieldValue::Bytes(Bytes::copy_from_slice(bytes)),
                }
            }
            b'x' => FieldValue::Bytes(Bytes::copy_from_slice(self.sized()?.0)),
            b'T' => FieldValue::Timestamp(self.u64()?),
            b'V' => FieldValue::Void,
            b'F' => FieldValue::Table(self.table(depth + 1)?),
            b'A' => {
                if depth + 1 >= MAX_FRAME_NESTING {
                    return None;
                }
                let mut items = self.sized()?;
                let mut a = Vec::new();
                while !items.is_empty() {
                    a.push(items.value(depth + 1)?);
                }
                FieldValue::Array(a)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
