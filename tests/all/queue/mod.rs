//! Queue engine integration tests.

mod common;
mod crash;
mod delivery;
mod model;
mod pacing;
mod policies;
mod recovery;
