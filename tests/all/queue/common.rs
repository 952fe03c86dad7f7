//! Helpers shared by the queue tests.

use std::sync::Arc;
use std::time::Duration;

use switchyard::message::{FieldValue, Message};
use switchyard::queue::{
    Consumer, ConsumerOptions, Delivery, EnqueueOptions, ManualClock, PublishOutcome, QueueConfig,
    QueueName, Queues, QueuesOptions,
};
use switchyard::store::{Durability, StoreConfig};

pub const T0: u64 = 1_800_000_000_000;

/// An engine on a temp dir with a manual clock and no timer thread.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    queues: Option<Queues>,
}

pub fn options(clock: Arc<ManualClock>, durability: Durability) -> QueuesOptions {
    QueuesOptions {
        store: StoreConfig {
            durability,
            cache_capacity: 8 * 1024 * 1024,
            ..StoreConfig::default()
        },
        clock,
        tick: None,
        ..QueuesOptions::default()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let q = Queues::open(dir.path(), options(clock.clone(), Durability::Relaxed)).unwrap();
        Env {
            dir,
            clock,
            queues: Some(q),
        }
    }

    /// Close and reopen (a clean restart). Consumers must be dropped first.
    pub fn restart(&mut self) {
        drop(self.queues.take());
        let opts = options(self.clock.clone(), Durability::Relaxed);
        self.queues = Some(Queues::open(self.dir.path(), opts).unwrap());
    }

    pub fn q(&self) -> &Queues {
        self.queues.as_ref().unwrap()
    }

    pub fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.q().process_due().unwrap();
    }

    pub fn declare(&self, n: &str, config: QueueConfig) -> QueueName {
        let name = name(n);
        self.q().declare(&name, config).unwrap();
        name
    }

    pub async fn publish(&self, queue: &QueueName, body: &str) -> PublishOutcome {
        self.q()
            .publish(queue, msg(body), EnqueueOptions::default())
            .await
            .unwrap()
    }

    pub fn puller(&self, queue: &QueueName) -> Consumer {
        let opts = ConsumerOptions {
            prefetch: 0,
            push: false,
        };
        self.q().consume(queue, opts).unwrap()
    }

    pub fn bodies(&self, queue: &QueueName) -> Vec<String> {
        self.q()
            .browse(queue, usize::MAX)
            .unwrap()
            .iter()
            .map(body)
            .collect()
    }
}

/// Options of a push consumer with this prefetch.
pub fn push(prefetch: u32) -> ConsumerOptions {
    ConsumerOptions {
        prefetch,
        push: true,
    }
}

pub fn name(s: &str) -> QueueName {
    QueueName::new(s).unwrap()
}

pub fn msg(body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
}

pub fn body(m: &Message) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

pub fn drain(c: &mut Consumer) -> Vec<Delivery> {
    std::iter::from_fn(|| c.try_recv()).collect()
}

pub fn dbodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| body(&d.message)).collect()
}

/// The newest `x-death` entry's field.
pub fn death_field(m: &Message, field: &str) -> FieldValue {
    let Some(FieldValue::Array(deaths)) = m.headers.get("x-death") else {
        panic!("no x-death header in {m:?}")
    };
    let FieldValue::Table(t) = &deaths[0] else {
        panic!("x-death entry is not a table")
    };
    t.get(field).cloned().unwrap_or(FieldValue::Void)
}
