//! Routing: exchanges and bindings decide which queues get which copy of a message.
//!
//! This layer sits between the protocol front ends and the queue engine. Built-in exchange types
//! follow RabbitMQ's semantics; the `x-wasm` type and binding filters delegate to plugins.

mod binding;
mod exchange;
mod headers_match;
mod topic;
mod topology;

pub use binding::{Binding, BindingTarget};
pub use exchange::{Exchange, ExchangeKind, FailurePolicy};
pub use headers_match::{HeadersPattern, InvalidXMatch, XMatch};
pub use topic::TopicPattern;
pub use topology::{Topology, TopologyError};
