//! Typed header values, a superset of AMQP 0-9-1 field-table values.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A headers table. Ordered by name so that encoding is deterministic.
pub type Headers = BTreeMap<String, FieldValue>;

/// The deepest nesting of tables and arrays a header value may have (a plain value is depth
/// 0, a table of plain values depth 1). Why a limit: encoding, decoding and converting a value
/// recurse once per level, and the depth is the publisher's (or a plugin's) choice; unbounded,
/// it overflows a thread's stack and aborts the broker, and a stored record would abort every
/// restart. 128 is what a JSON body can reach anyway (serde_json's own limit) and far beyond
/// real headers (`x-death` is 3 deep), and decoding it takes a fraction of a 2 MiB thread
/// stack even in a debug build.
pub const MAX_NESTING: usize = 128;

/// A header value that keeps its type across storage, the wire and plugins.
///
/// Integer widths are kept so that a value read from an AMQP client goes back out with the same
/// type tag it came in with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FieldValue {
    Void,
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Decimal {
        scale: u8,
        value: u32,
    },
    String(String),
    Bytes(Bytes),
    /// Seconds since the Unix epoch (AMQP's timestamp resolution).
    Timestamp(u64),
    Table(Headers),
    Array(Vec<FieldValue>),
}

impl FieldValue {
    /// The value as a signed integer when it is any integer type that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            FieldValue::U64(v) => i64::try_from(v).ok(),
            FieldValue::Timestamp(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// How deeply tables and arrays nest in this value (0 for a plain value). Iterative, so
    /// it is safe on any value however deep.
    pub fn nesting(&self) -> usize {
        let mut deepest = 0;
        let mut todo = vec![(self, 0usize)];
        while let Some((v, depth)) = todo.pop() {
            match v {
                FieldValue::Table(t) => todo.extend(t.values().map(|v| (v, depth + 1))),
                FieldValue::Array(a) => todo.extend(a.iter().map(|v| (v, depth + 1))),
                _ => deepest = deepest.max(depth),
            }
            if matches!(v, FieldValue::Table(_) | FieldValue::Array(_)) {
                deepest = deepest.max(depth + 1);
            }
        }
        deepest
    }

    /// Bytes this value occupies, roughly; used for header size limits.
    pub fn approximate_size(&self) -> usize {
        match self {
            FieldValue::String(s) => s.len(),
            FieldValue::Bytes(b) => b.len(),
            FieldValue::Table(t) => t.iter().map(|(k, v)| k.len() + v.approximate_size()).sum(),
            FieldValue::Array(a) => a.iter().map(FieldValue::approximate_size).sum(),
            _ => 8,
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::String(s.to_owned())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::String(s)
    }
}

impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::I64(v)
    }
}

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}

impl From<f64> for FieldValue {
    fn from(v: f64) -> Self {
        FieldValue::F64(v)
    }
}
