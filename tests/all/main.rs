//! The integration tests, as one binary (one link instead of one per file).

mod support;

mod admin;
mod amqp;
mod broker;
mod cli;
mod message;
mod plugin;
mod queue;
mod reliability;
mod store;
