//! Switchyard: a durable message broker whose routing is programmable with WebAssembly.
//!
//! # Module map
//!
//! Layers, bottom up. Each layer knows only the ones below it; the broker core knows no sockets
//! and no wasmtime types.
//!
//! - [`message`]: the message every layer shares — id, AMQP properties, typed headers, body — and
//!   its versioned storage codec.
//! - [`store`]: the sled database under a validated data directory — keyspace layout,
//!   durability modes, the group-commit flusher.
//! - [`queue`]: the durable queue engine — queues, consumers, deliveries, retry, dead-letter,
//!   TTL, max-length, dedup, redrive, restart recovery; and `queue::jetstream`, the same queues
//!   on a NATS JetStream cluster for many nodes; `queue::QueueStore`, the seam that lets the
//!   broker run on either.
//! - [`plugin`]: the WebAssembly plugin host — filter, transform and route plugins under limits,
//!   with a persisted registry and hot reload. No wasmtime types in its API.
//! - [`auth`]: AMQP users (salted password hashes in RabbitMQ's format) and per-vhost
//!   configure/write/read permissions. Protocol-free.
//! - [`routing`]: exchanges and bindings: built-in matching (direct, fanout, topic, headers).
//! - [`cluster`]: what many nodes share through NATS JetStream besides the queues: the
//!   plugin registry and the topology, followed by every node (`serve --store nats://`).
//! - [`broker`]: routing decisions over exchanges and plugins, committed atomically into the
//!   queues; failure policies, circuit breakers, dry runs, replay of dead letters.
//! - [`tls`]: the certificate and key (rustls) and the server side of the TLS handshake, shared
//!   by the AMQP and HTTP listeners; knows neither protocol.
//! - [`amqp`]: the AMQP 0-9-1 front end — sockets and framing (amq-protocol), calling the broker.
//! - [`admin`]: the HTTP admin API (axum, JSON) and `/metrics` — calls the broker; reads only
//!   the AMQP layer's connection/consumer registry.
//! - [`definitions`]: topology as a JSON document (exchanges, queues, bindings, plugins,
//!   users): applied at start, exported from a running broker.
//! - [`config`]: the effective configuration (defaults < TOML file < `SWITCHYARD_*` < flags).
//! - [`server`]: `switchyard serve` as a library — listeners, startup, graceful shutdown.
//! - [`cli`]: the command-line client of the admin API (blocking HTTP, tables or JSON).
//!
//! See `ARCHITECTURE.md` for a message's path from publish to ack.

pub mod admin;
pub mod amqp;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod definitions;
pub mod message;
pub mod plugin;
pub mod queue;
pub mod routing;
pub mod server;
pub mod store;
pub mod tls;
