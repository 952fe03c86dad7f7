//! The message: AMQP-compatible properties, a typed headers table and an opaque body.
//!
//! This is the one message type every layer shares. The protocol layer converts wire frames into
//! it, the queue engine stores it, and the plugin host marshals it into WIT records. It carries no
//! delivery state (tags, counts, leases): that belongs to the queue that holds it.
//!
//! `fuzzing`: entry points for the `message_codec` fuzz target and its regression test, and the
//! byte-to-message builder other fuzz targets share.

mod codec;
#[doc(hidden)]
pub mod fuzzing;
mod id;
mod lineage;
mod value;

pub use codec::{CodecError, RECORD_VERSION};
pub use id::MessageId;
pub use lineage::{Lineage, LINEAGE_HEADER};
pub use value::{FieldValue, Headers, MAX_NESTING};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A message as published: identity, properties, headers and body, and the plugin versions that
/// routed it.
///
/// Invariant: `id` is never empty. A publisher that gives no message id gets a generated,
/// time-ordered one (see [`MessageId::generate`]), so ids sort roughly by publish time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub properties: Properties,
    pub headers: Headers,
    pub body: Bytes,
    /// Shown outside the broker as the header [`LINEAGE_HEADER`]; read headers through
    /// [`Message::header`] or [`Message::shown_headers`] to see it. Last, and left out when
    /// empty: a record without it is one written before it existed.
    #[serde(default, skip_serializing_if = "Lineage::is_empty")]
    pub lineage: Lineage,
}

/// AMQP 0-9-1 basic properties, minus the message id (which is [`Message::id`]) and the headers
/// table (which is [`Message::headers`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// `true` for AMQP delivery-mode 2. Switchyard stores every message durably; the flag is kept
    /// so consumers see what the publisher said.
    pub persistent: bool,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// Per-message time to live in milliseconds (AMQP `expiration`, a decimal string on the wire).
    pub expiration_ms: Option<u64>,
    /// Publisher's timestamp, seconds since the Unix epoch (AMQP's resolution).
    pub timestamp: Option<u64>,
    /// AMQP `type`: the message's kind, e.g. the command or event name.
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
}

impl Message {
    /// A message with a generated id, default properties, no headers and the given body.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            id: MessageId::generate(),
            properties: Properties::default(),
            headers: Headers::new(),
            body: body.into(),
            lineage: Lineage::default(),
        }
    }

    /// Moves this message out, leaving its id and nothing else behind: what a record of where
    /// copies went keeps once the copies themselves are handed on. One allocation (the id),
    /// where a clone makes one per header.
    pub fn hand_over(&mut self) -> Message {
        Message {
            id: self.id.clone(),
            properties: std::mem::take(&mut self.properties),
            headers: std::mem::take(&mut self.headers),
            body: std::mem::take(&mut self.body),
            lineage: std::mem::take(&mut self.lineage),
        }
    }

    /// Builder-style: set a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Builder-style: set the message id.
    pub fn with_id(mut self, id: impl Into<MessageId>) -> Self {
        self.id = id.into();
        self
    }

    /// The deepest nesting among the header values (see [`MAX_NESTING`]).
    pub fn header_nesting(&self) -> usize {
        self.headers
            .values()
            .map(FieldValue::nesting)
            .max()
            .unwrap_or(0)
    }

    /// Approximate bytes this message occupies: body plus headers and properties. Used for size
    /// limits and statistics, not for allocation.
    pub fn approximate_size(&self) -> usize {
        let props = &self.properties;
        let strings = [
            &props.content_type,
            &props.content_encoding,
            &props.correlation_id,
            &props.reply_to,
            &props.kind,
            &props.user_id,
            &props.app_id,
        ];
        let props_len: usize = strings
            .iter()
            .filter_map(|s| s.as_ref())
            .map(String::len)
            .sum();
        self.body.len()
            + self.id.as_str().len()
            + self.lineage.size()
            + props_len
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.approximate_size())
                .sum::<usize>()
    }
}
