//! What the crash loop's clients saw, across broker lifetimes, and the rules it must obey.
//!
//! The broker's promises (ARCHITECTURE.md, "Group commit and durability" and "Recovery"):
//! - a publish is confirmed only once it is durable, so every confirmed message is delivered at
//!   least once, whatever the kills;
//! - acks are not waited for: an ack the broker had not flushed when it was killed is lost, and
//!   its message is delivered again after the restart. Within one broker lifetime, an acked (or
//!   merely delivered and unsettled) message is never delivered twice;
//! - the first-delivery high-water mark is written with each delivery and flushed within 5 ms,
//!   so a message delivered before a kill comes back with `redelivered = true`, except when that
//!   delivery was in the last unflushed moment before the kill. The ledger checks the flag for
//!   every redelivery whose previous delivery reached the client [`FLAG_MARGIN`] or more before
//!   the kill: far beyond the 5 ms flush interval, so a failure is a broken promise, not timing.
//! - by the same bound, an ack the client sent [`FLAG_MARGIN`] or more before a kill was read,
//!   applied and flushed by then: it is never lost.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// See the module docs.
pub const FLAG_MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Seen {
    cycle: usize,
    at: Instant,
}

/// Everything the clients observed. Guarded by a mutex in the test.
#[derive(Debug, Default)]
pub struct Ledger {
    pub confirmed: HashSet<String>,
    pub nacked: u64,
    deliveries: HashMap<String, Seen>,
    /// The lifetime and time of each message's last ack.
    acked: HashMap<String, (usize, Instant)>,
    /// When the broker of cycle `k` was killed.
    kills: Vec<Instant>,
    pub violations: Vec<String>,
    pub delivered_total: u64,
    /// Deliveries again after a kill of a message that was delivered and not acked.
    pub redelivered_unacked: u64,
    /// Deliveries again after a kill of a message whose ack the kill lost.
    pub redelivered_acked: u64,
    /// Redeliveries whose `redelivered` flag the rules required and found set.
    pub flags_checked: u64,
    /// The longest time between a lost ack and the kill that lost it.
    pub oldest_lost_ack: Duration,
}

impl Ledger {
    pub fn confirm(&mut self, id: String) {
        self.confirmed.insert(id);
    }

    pub fn killed(&mut self, cycle: usize, at: Instant) {
        assert_eq!(self.kills.len(), cycle, "kills are recorded in cycle order");
        self.kills.push(at);
    }

    /// A delivery of `id` in `cycle`; `intact` is the body check's result.
    pub fn delivered(
        &mut self,
        id: &str,
        cycle: usize,
        redelivered: bool,
        intact: Result<(), String>,
    ) {
        self.delivered_total += 1;
        if let Err(e) = intact {
            self.violations.push(e);
        }
        let now = Instant::now();
        if let Some(prev) = self.deliveries.get(id).copied() {
            if prev.cycle == cycle {
                self.violations.push(format!(
                    "{id} delivered twice in broker lifetime {cycle} (no kill in between)"
                ));
            } else {
                if let Some(&(c, at)) = self.acked.get(id).filter(|(c, _)| *c == prev.cycle) {
                    self.redelivered_acked += 1;
                    let age = self.kills[c].saturating_duration_since(at);
                    self.oldest_lost_ack = self.oldest_lost_ack.max(age);
                    if age >= FLAG_MARGIN {
                        self.violations.push(format!(
                            "{id}: an ack sent {age:?} before the kill of lifetime {c} was lost"
                        ));
                    }
                } else {
                    self.redelivered_unacked += 1;
                }
                let kill = self.kills[prev.cycle];
                if kill.saturating_duration_since(prev.at) >= FLAG_MARGIN {
                    if redelivered {
                        self.flags_checked += 1;
                    } else {
                        self.violations.push(format!(
                            "{id} delivered in lifetime {} {:?} before the kill came back in \
                             lifetime {cycle} with redelivered=false",
                            prev.cycle,
                            kill.saturating_duration_since(prev.at)
                        ));
                    }
                }
            }
        }
        self.deliveries
            .insert(id.to_owned(), Seen { cycle, at: now });
    }

    pub fn acked(&mut self, id: &str, cycle: usize) {
        self.acked.insert(id.to_owned(), (cycle, Instant::now()));
    }

    /// Confirmed messages never delivered.
    pub fn undelivered(&self) -> Vec<&String> {
        self.confirmed
            .iter()
            .filter(|id| !self.deliveries.contains_key(*id))
            .collect()
    }
}
