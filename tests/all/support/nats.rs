//! The local NATS for the JetStream store's tests (127.0.0.1:4222, or `SWITCHYARD_TEST_NATS`).

use std::time::Duration;

use switchyard::queue::jetstream::{JetStreamError, JetStreamOptions, JetStreamQueues};

pub fn url() -> String {
    std::env::var("SWITCHYARD_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A node of a fresh namespace, or `None` (after saying why) when NATS is not there.
/// Unacknowledged deliveries come back after 2 s.
pub async fn first_node(test: &str) -> Option<JetStreamQueues> {
    first_node_with(test, Duration::from_secs(2)).await
}

/// [`first_node`] with the namespace's `ack_wait` given.
pub async fn first_node_with(test: &str, ack_wait: Duration) -> Option<JetStreamQueues> {
    let namespace = format!(
        "SYT_{test}_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut options = JetStreamOptions::new(url());
    options.namespace = namespace;
    options.ack_wait = ack_wait;
    match JetStreamQueues::connect(options).await {
        Ok(q) => Some(q),
        Err(e @ JetStreamError::Connect { .. }) => {
            println!("skipped: {e}");
            None
        }
        Err(e) => panic!("NATS is there but the store would not open: {e}"),
    }
}
