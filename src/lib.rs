//! Switchyard: a durable message broker whose routing is programmable with WebAssembly.
//!
//! # Module map
//!
//! Layers, bottom up. Each layer knows only the ones below it; the broker core knows no sockets
//! and no wasmtime types.
//!
//! - [`message`]: the message every layer shares — id, AMQP properties, typed headers, body — and
//!   its versioned storage codec.
//! - [`routing`]: exchanges and bindings: built-in matching (direct, fanout, topic, headers) and
//!   plugin-driven routing.
//! - [`amqp`]: the AMQP 0-9-1 front end (sockets and framing; calls the broker).
//!
//! See `ARCHITECTURE.md` for a message's path from publish to ack.

pub mod amqp;
pub mod message;
pub mod routing;
