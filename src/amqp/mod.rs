//! The AMQP 0-9-1 front end: existing RabbitMQ clients connect unchanged.
//!
//! This layer knows sockets and `amq-protocol`; the broker knows neither. Files, bottom up:
//! - [`codec`]: splits the byte stream into frames, enforcing frame-max before buffering;
//!   `hot_frames` and `content` read the frames every message brings without amq-protocol's
//!   intermediate values (on `reader`), falling back to it for anything unusual;
//!   `nesting`: the bound on field-table depth it checks before parsing;
//! - [`outbound`]: the bounded outbound queue and the writer task (heartbeats); `content`:
//!   a message's content header encoded without amq-protocol's intermediate values;
//! - [`convert`]: wire properties and field tables ⇄ [`crate::message`];
//! - [`error`]: AMQP exceptions and reply codes;
//! - `handshake`: start/tune/open with PLAIN authentication;
//! - [`connection`]: the frame loop and connection exceptions;
//! - [`channel`]: channel state, content assembly, dispatch;
//! - `ops`, `declare`, `publish`, `consume`, `tags`, `args`: the channel methods that call the
//!   broker, and the mapping of AMQP arguments and errors;
//! - [`server`]: the listeners (plain and TLS) and their housekeeping (queue expiry, resource alarm);
//!   [`registry`]: a read-only view of connections and consumers;
//! - `fuzzing`: entry points for the fuzz targets in `fuzz/` and their regression test.

mod args;
pub mod channel;
pub mod codec;
pub mod connection;
mod consume;
mod content;
pub mod convert;
mod declare;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
mod hot_frames;
mod nesting;
mod ops;
pub mod outbound;
mod publish;
mod reader;
pub mod registry;
pub mod server;
mod tags;

pub use error::{code, AmqpError};
pub use registry::{ConnectionInfo, ConsumerInfo, Registry};
pub use server::{
    run, run_listeners, run_shared, Listener, ServerConfig, Shared, DEFAULT_CHANNEL_MAX,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_COUNT, DEFAULT_MAX_MESSAGE_BYTES,
};
