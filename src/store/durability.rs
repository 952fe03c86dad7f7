//! Durability modes: when a publish may be acknowledged.

use serde::{Deserialize, Serialize};

/// When a write counts as done.
///
/// | mode | acknowledged | lost on process crash | lost on power loss / kernel crash |
/// |---|---|---|---|
/// | `Fsync` | after sled `flush()` **and** `fsync` of the `db` file | nothing acknowledged | nothing acknowledged |
/// | `Relaxed` | immediately, before any flush | up to one flush interval of writes (default 5 ms) | the same, plus whatever the OS had not written back |
///
/// Both modes write through the same sled batch; they differ only in whether the caller waits
/// for the group-commit flusher (see [`crate::store::Flusher`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Durability {
    /// Acknowledge only after the data is on stable storage. Many concurrent writers share one
    /// flush (group commit).
    #[default]
    Fsync,
    /// Acknowledge immediately; a background flush runs every few milliseconds (like NATS
    /// JetStream's default).
    Relaxed,
}

impl Durability {
    /// The stricter of two modes; a fan-out to queues with mixed modes waits for the strictest.
    pub fn strictest(self, other: Durability) -> Durability {
        if self == Durability::Fsync || other == Durability::Fsync {
            Durability::Fsync
        } else {
            Durability::Relaxed
        }
    }
}
