//! The local NATS for the JetStream store's tests (127.0.0.1:4222, or `SWITCHYARD_TEST_NATS`).

use std::time::Duration;

use switchyard::queue::jetstream::{JetStreamError, JetStreamOptions, JetStreamQueues};

pub fn url() -> String {
    std::env::var("SWITCHYARD_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A node of a fresh namespace, or `None` (after saying why) when NATS is not there.
pub async fn first_node(test: &str) -> Option<JetStreamQueues> {
    let namespace = format!(
        "SYT_{test}_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut options = JetStreamOptions::new(url());
    options.namespace = namespace;
    options.ack_wait = Duration::from_secs(2);
    match JetStreamQueues::connect(options).await {
        Ok(q) => Some(q),
        Err(e @ JetStreamError::Connect { .. }) => {
            println!("skipped: {e}");
            None
        }
        Err(e) => panic!("NATS is there but the store would not open: {e}"),
    }
}
