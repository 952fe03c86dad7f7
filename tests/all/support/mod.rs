//! Helpers shared by the integration tests.

pub mod plugins;
pub mod wait;
