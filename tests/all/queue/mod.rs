//! Queue engine integration tests.

mod common;
mod crash;
mod delivery;
mod model;
mod policies;
mod recovery;
