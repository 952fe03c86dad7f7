//! The AMQP 0-9-1 front end: existing RabbitMQ clients connect unchanged.
//!
//! This layer knows sockets and `amq-protocol`; the broker knows neither. Files, bottom up:
//! - [`codec`]: splits the byte stream into frames, enforcing frame-max before buffering;
//! - [`outbound`]: the bounded outbound queue and the writer task (heartbeats);
//! - [`convert`]: wire properties and field tables ⇄ [`crate::message`];
//! - [`error`]: AMQP exceptions and reply codes;
//! - [`connection`]: handshake (PLAIN), the frame loop, connection exceptions;
//! - [`channel`]: channel state, content assembly, dispatch;
//! - `ops`: the channel methods that call the broker;
//! - [`server`]: the listener.

pub mod channel;
pub mod codec;
pub mod connection;
pub mod convert;
pub mod error;
mod ops;
pub mod outbound;
pub mod server;

pub use error::{code, AmqpError};
pub use server::{run, ServerConfig, Shared, User};
