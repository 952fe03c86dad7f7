//! Helpers shared by the integration tests.

pub mod fuzz;
pub mod nats;
pub mod plugins;
pub mod tls;
pub mod wait;
