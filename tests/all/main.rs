//! The integration tests, as one binary (one link instead of one per file).

mod support;

mod amqp;
mod broker;
mod plugin;
mod queue;
