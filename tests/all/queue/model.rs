//! Model-based test: random operation sequences against a simple in-memory model.
//!
//! The model is the specification in miniature: a map seq -> message; `get` delivers the
//! lowest-seq message that is not in flight and is due, dead-lettering expired and
//! over-the-limit messages it passes; nack with requeue waits the fixed retry delay; a restart
//! returns everything in flight. The engine (lazy cursor, ready/delayed indexes, sled) must
//! agree on every delivery, every dead letter and every count.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use switchyard::message::FieldValue;
use switchyard::queue::{Consumer, EnqueueOptions, QueueConfig, RetryPolicy};

use super::common::*;

const MAX_DELIVERIES: u32 = 3;
const RETRY_MS: u64 = 100;

#[derive(Debug, Clone)]
enum Op {
    Publish { ttl: Option<u64> },
    Get,
    Ack(usize),
    Nack { idx: usize, requeue: bool },
    Advance(u64),
    Tick,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::option::of(prop_oneof![Just(50u64), Just(300)]).prop_map(|ttl| Op::Publish { ttl }),
        4 => Just(Op::Get),
        2 => any::<usize>().prop_map(Op::Ack),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(idx, requeue)| Op::Nack { idx, requeue }),
        2 => prop_oneof![Just(10u64), Just(60), Just(200)].prop_map(Op::Advance),
        1 => Just(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug)]
struct MMsg {
    body: String,
    deliveries: u32,
    not_before: u64,
    expires: Option<u64>,
    inflight: bool,
}

#[derive(Debug, Default)]
struct Model {
    now: u64,
    next_seq: u64,
    msgs: BTreeMap<u64, MMsg>,
    /// (tag, seq) in delivery order.
    inflight: Vec<(u64, u64)>,
    next_tag: u64,
    dead: Vec<(String, String)>,
}

impl Model {
    /// Deliver like the engine; `stop_at_first` = a timer tick (expire heads, deliver nothing).
    fn get(&mut self, tick: bool) -> Option<(String, bool, u32)> {
        let seqs: Vec<u64> = self.msgs.keys().copied().collect();
        for seq in seqs {
            let now = self.now;
            let m = &self.msgs[&seq];
            if m.inflight || m.not_before > now {
                continue;
            }
            let reason = if m.expires.is_some_and(|e| e <= now) {
                "expired"
            } else if m.deliveries >= MAX_DELIVERIES {
                "delivery_limit"
            } else {
                if tick {
                    return None;
                }
                let m = self.msgs.get_mut(&seq).unwrap();
                let redelivered = m.deliveries > 0;
                m.deliveries += 1;
                m.inflight = true;
                self.inflight.push((self.next_tag, seq));
                self.next_tag += 1;
                return Some((m.body.clone(), redelivered, m.deliveries));
            };
            let m = self.msgs.remove(&seq).unwrap();
            self.dead.push((m.body, reason.into()));
        }
        None
    }

    fn settle(&mut self, idx: usize, how: Option<bool>) -> Option<u64> {
        if self.inflight.is_empty() {
            return None;
        }
        let (tag, seq) = self.inflight.remove(idx % self.inflight.len());
        let m = self.msgs.get_mut(&seq).unwrap();
        m.inflight = false;
        let dead = match how {
            None => {
                self.msgs.remove(&seq);
                None
            }
            Some(false) => Some("rejected"),
            Some(true) if m.deliveries >= MAX_DELIVERIES => Some("delivery_limit"),
            Some(true) => {
                m.not_before = self.now + RETRY_MS;
                None
            }
        };
        if let Some(reason) = dead {
            let m = self.msgs.remove(&seq).unwrap();
            self.dead.push((m.body, reason.into()));
        }
        Some(tag)
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut env = Env::new();
    let dlq = env.declare("dlq", QueueConfig::default());
    let q = env.declare(
        "work",
        QueueConfig {
            max_deliveries: Some(MAX_DELIVERIES),
            retry: RetryPolicy::Fixed { delay_ms: RETRY_MS },
            dead_letter: Some(dlq.clone()),
            ..QueueConfig::default()
        },
    );
    let mut model = Model {
        now: T0,
        next_tag: 1,
        ..Model::default()
    };
    let mut consumer: Option<Consumer> = Some(env.puller(&q));
    for op in ops {
        let c = consumer.as_ref().unwrap();
        match op {
            Op::Publish { ttl } => {
                model.next_seq += 1;
                let body = format!("p{}", model.next_seq);
                let mut m = msg(&body);
                m.properties.expiration_ms = ttl;
                let fut = env.q().publish(&q, m, EnqueueOptions::default());
                prop_assert!(rt.block_on(fut).unwrap().is_stored());
                model.msgs.insert(
                    model.next_seq,
                    MMsg {
                        body,
                        deliveries: 0,
                        not_before: 0,
                        expires: ttl.map(|t| model.now + t),
                        inflight: false,
                    },
                );
            }
            Op::Get => {
                let got = c
                    .get()
                    .unwrap()
                    .map(|d| (body(&d.message), d.redelivered, d.delivery_count));
                prop_assert_eq!(got, model.get(false));
            }
            Op::Ack(idx) => {
                if let Some(tag) = model.settle(idx, None) {
                    prop_assert_eq!(c.ack(tag, false).unwrap(), 1);
                }
            }
            Op::Nack { idx, requeue } => {
                if let Some(tag) = model.settle(idx, Some(requeue)) {
                    prop_assert_eq!(c.nack(tag, false, requeue).unwrap(), 1);
                }
            }
            Op::Advance(ms) => {
                env.clock.advance(Duration::from_millis(ms));
                model.now += ms;
            }
            Op::Tick => {
                env.q().process_due().unwrap();
                model.get(true);
            }
            Op::Restart => {
                drop(consumer.take());
                env.restart();
                consumer = Some(env.puller(&q));
                for (_, seq) in model.inflight.drain(..) {
                    let m = model.msgs.get_mut(&seq).unwrap();
                    m.inflight = false;
                    m.not_before = 0;
                }
                model.next_tag = 1;
            }
        }
        let stats = env.q().stats(&q).unwrap();
        prop_assert_eq!(stats.messages, model.msgs.len() as u64);
        prop_assert_eq!(stats.unacked, model.inflight.len() as u64);
        let dead: Vec<(String, String)> = env
            .q()
            .browse(&dlq, usize::MAX)
            .unwrap()
            .iter()
            .map(|m| {
                let FieldValue::String(r) = death_field(m, "reason") else {
                    panic!("reason is a string")
                };
                (body(m), r)
            })
            .collect();
        prop_assert_eq!(&dead, &model.dead);
    }
    drop(consumer);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]
    #[test]
    fn engine_agrees_with_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
