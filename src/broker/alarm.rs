//! Resource alarms: when the broker should stop taking publishes.
//!
//! Why a watch channel: front ends (the AMQP server) must learn when an alarm is raised and
//! cleared without polling per connection; each subscribes and reacts (RabbitMQ's
//! `connection.blocked`). The broker itself keeps accepting publishes: refusing them is the
//! front end's job, which can hold a client back instead of failing its messages.
//!
//! Invariant: the published state is `Some(reason)` exactly while the last evaluation found
//! free disk space under the data directory below the limit, or the store refusing writes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// RabbitMQ's default `disk_free_limit`.
pub const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;

/// The broker's resource alarm. Cheap to evaluate (one `statvfs`).
#[derive(Debug)]
pub struct ResourceAlarm {
    dir: PathBuf,
    disk_free_limit: AtomicU64,
    state: watch::Sender<Option<String>>,
}

impl ResourceAlarm {
    pub fn new(dir: PathBuf, disk_free_limit: u64) -> ResourceAlarm {
        ResourceAlarm {
            dir,
            disk_free_limit: AtomicU64::new(disk_free_limit),
            state: watch::Sender::new(None),
        }
    }

    /// Free bytes below which the alarm is raised (0 disables the disk check). Takes effect
    /// at the next evaluation.
    pub fn set_disk_free_limit(&self, bytes: u64) {
        self.disk_free_limit.store(bytes, Ordering::SeqCst);
    }

    pub fn disk_free_limit(&self) -> u64 {
        self.disk_free_limit.load(Ordering::SeqCst)
    }

    /// Why publishes are blocked now, if they are.
    pub fn active(&self) -> Option<String> {
        self.state.borrow().clone()
    }

    /// Follow the alarm: `Some(reason)` while raised.
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.state.subscribe()
    }

    /// Re-evaluate with the store's health (`Some(why)` when it refuses writes) and publish
    /// the result if it changed. Returns the current state.
    pub(crate) fn evaluate(&self, store_problem: Option<String>) -> Option<String> {
        let limit = self.disk_free_limit();
        let disk = match free_bytes(&self.dir) {
            Some(free) if limit > 0 && free < limit => Some(format!(
                "low on disk space: {free} bytes free under {}, limit {limit}",
                self.dir.display()
            )),
            _ => None,
        };
        let now = disk.or(store_problem.map(|why| format!("store refuses writes: {why}")));
        self.state.send_if_modified(|s| {
            if s.is_some() == now.is_some() {
                return false;
            }
            match &now {
                Some(why) => tracing::warn!(reason = %why, "resource alarm raised"),
                None => tracing::info!("resource alarm cleared"),
            }
            *s = now.clone();
            true
        });
        now
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    match rustix::fs::statvfs(dir) {
        Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "statvfs failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_and_cleared_by_the_limit_and_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let alarm = ResourceAlarm::new(dir.path().to_path_buf(), 0);
        let mut rx = alarm.subscribe();
        assert_eq!(alarm.evaluate(None), None);
        alarm.set_disk_free_limit(u64::MAX);
        assert!(alarm.evaluate(None).unwrap().contains("disk"));
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().is_some());
        alarm.set_disk_free_limit(0);
        assert_eq!(alarm.evaluate(None), None);
        assert!(alarm.evaluate(Some("poisoned".into())).is_some());
        assert!(alarm.active().unwrap().contains("poisoned"));
        assert_eq!(alarm.evaluate(None), None);
    }
}
