//! Queue engine integration tests.

mod common;
mod crash;
mod delivery;
mod hot;
mod jetstream;
mod jetstream_cluster;
mod model;
mod pacing;
mod policies;
mod recovery;
