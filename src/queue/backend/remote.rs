//! The JetStream store as one node holds it: the connection's own runtime, and the blocking
//! form of the control-plane calls.
//!
//! Why a runtime of its own: declarations, deletions and statistics are synchronous calls in
//! the broker (as they are on the embedded store, where they are a local write), and on
//! JetStream each is a network round trip. The NATS connection, the publish sender and the
//! declarations watch run on this runtime, so a caller blocked on a round trip never starves
//! the I/O that will answer it. Publishes and deliveries do not block: they are async all
//! the way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::queue::jetstream::{JetStreamError, JetStreamOptions, JetStreamQueues};
use crate::queue::QueueName;

/// A runtime that is shut down without waiting when dropped (it may be dropped inside
/// another runtime, where a blocking shutdown would panic).
#[derive(Debug)]
struct IoRuntime(Option<Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The JetStream store of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Remote {
    pub(super) queues: Arc<JetStreamQueues>,
    io: Arc<IoRuntime>,
    /// Consumers open on this node, per queue (JetStream counts only the shared durable
    /// consumer): what AMQP's consumer count, exclusive consumers and auto-delete see.
    pub(super) local_consumers: Arc<Mutex<HashMap<QueueName, u64>>>,
}

impl Remote {
    /// Connects on a runtime of its own (see the module docs).
    pub async fn connect(options: JetStreamOptions) -> Result<Remote, JetStreamError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchyard-nats")
            .enable_all()
            .build()
            .map_err(|e| JetStreamError::nats("starting the NATS runtime", e))?;
        let io = Arc::new(IoRuntime(Some(runtime)));
        let queues = io_handle(&io)
            .spawn(JetStreamQueues::connect(options))
            .await
            .map_err(|e| JetStreamError::nats("connecting", e))??;
        Ok(Remote {
            queues: Arc::new(queues),
            io,
            local_consumers: Arc::default(),
        })
    }

    pub fn queues(&self) -> &JetStreamQueues {
        &self.queues
    }

    /// Runs `future` on the store's runtime and blocks the caller until it is done: one
    /// control-plane round trip. On a multi-threaded runtime the worker is handed over to
    /// other tasks meanwhile (`block_in_place`). Never called from the store's own runtime
    /// (its one thread would wait for itself): only the broker and the front ends call it,
    /// and they run elsewhere.
    pub fn block<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = io_handle(&self.io).spawn(future);
        let wait = || futures::executor::block_on(task).expect("a store call does not panic");
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    pub(super) fn consumer_opened(&self, queue: &QueueName) {
        *self
            .local_consumers
            .lock()
            .entry(queue.clone())
            .or_default() += 1;
    }

    pub(super) fn consumers(&self, queue: &QueueName) -> u64 {
        self.local_consumers.lock().get(queue).copied().unwrap_or(0)
    }
}

fn io_handle(io: &IoRuntime) -> &Handle {
    io.0.as_ref()
        .expect("the runtime lives until dropped")
        .handle()
}

/// Counts a consumer of this node while it lives.
#[derive(Debug)]
pub(super) struct LocalConsumer {
    pub counts: Arc<Mutex<HashMap<QueueName, u64>>>,
    pub queue: QueueName,
}

impl Drop for LocalConsumer {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.queue) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.queue);
            }
        }
    }
}
