//! Exchanges: named routing points that publishers send to.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::message::Headers;

/// How an exchange picks bindings for a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeKind {
    /// Bindings whose key equals the routing key.
    Direct,
    /// Every binding.
    Fanout,
    /// Bindings whose pattern (`*`, `#`) matches the routing key.
    Topic,
    /// Bindings whose arguments match the message headers (`x-match`).
    Headers,
    /// A router plugin chooses the destinations (`x-wasm` on the wire, `x-plugin` names it).
    Wasm { plugin: String },
}

impl ExchangeKind {
    /// The AMQP type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::Wasm { .. } => "x-wasm",
        }
    }
}

/// What an exchange does when a plugin in its pipeline fails (error, trap or timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// Dead-letter the message with the failure as its reason.
    #[default]
    DeadLetter,
    /// Refuse the publish: the publisher gets a negative acknowledgement.
    Reject,
    /// Drop the message, counting it.
    Drop,
    /// Route to this queue instead.
    Fallback { queue: String },
}

/// A declared exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Shared: every plugin step a publish through this exchange records names it.
    pub name: Arc<str>,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    /// Internal exchanges take no publishes from clients, only from other exchanges.
    pub internal: bool,
    /// Where messages no binding takes go, if anywhere (`alternate-exchange`).
    pub alternate_exchange: Option<String>,
    /// Filter and transform plugins run in order before the exchange routes.
    pub pipeline: Vec<String>,
    pub failure_policy: FailurePolicy,
    /// The declaration's arguments, kept to answer equivalence checks on redeclare.
    pub arguments: Headers,
}

impl Exchange {
    pub fn new(name: impl Into<Arc<str>>, kind: ExchangeKind) -> Self {
        Exchange {
            name: name.into(),
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            alternate_exchange: None,
            pipeline: Vec::new(),
            failure_policy: FailurePolicy::default(),
            arguments: Headers::new(),
        }
    }
}
