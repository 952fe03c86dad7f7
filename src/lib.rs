//! Switchyard: a durable message broker whose routing is programmable with WebAssembly.
//!
//! # Module map
//!
//! Layers, bottom up. Each layer knows only the ones below it; the broker core knows no sockets
//! and no wasmtime types.
//!
//! - [`message`]: the message every layer shares — id, AMQP properties, typed headers, body — and
//!   its versioned storage codec.
//!
//! - [`plugin`]: the WebAssembly plugin host — filter, transform and route plugins under limits,
//!   with a persisted registry and hot reload. No wasmtime types in its API.
//!
//! See `ARCHITECTURE.md` for a message's path from publish to ack.

pub mod message;
pub mod plugin;
