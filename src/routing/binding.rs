//! Bindings: the edges from an exchange to a queue or another exchange.

use serde::{Deserialize, Serialize};

use super::{HeadersPattern, TopicPattern};
use crate::message::Headers;

/// Where a binding leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BindingTarget {
    Queue(String),
    Exchange(String),
}

/// A binding from `source` to `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub source: String,
    pub target: BindingTarget,
    pub routing_key: String,
    pub arguments: Headers,
    /// A filter plugin (`x-filter`) that must keep a message for this binding to take it: a
    /// content-based subscription.
    pub filter: Option<String>,
}

/// A binding with its key pre-parsed for the source exchange's type, so publishing never parses.
#[derive(Debug, Clone)]
pub(crate) struct CompiledBinding {
    pub binding: Binding,
    pub topic: Option<TopicPattern>,
    pub headers: Option<HeadersPattern>,
}

impl Binding {
    /// Same source, target, key and arguments: AMQP treats such bindings as one.
    pub fn same_as(&self, other: &Binding) -> bool {
        self.source == other.source
            && self.target == other.target
            && self.routing_key == other.routing_key
            && self.arguments == other.arguments
    }
}
