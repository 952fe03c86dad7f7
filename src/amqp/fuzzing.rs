//! Fuzzing entry points, shared by the cargo-fuzz targets in `fuzz/` and by the regression test
//! that replays saved inputs, so `cargo test` covers every input the fuzzer ever found without
//! building cargo-fuzz. Not part of the API.
//!
//! [`Harness::connection`] drives a real connection task (the same `serve_io` as TCP clients
//! get) over `tokio::io::duplex`, against a real [`Broker`] in a directory, and fails if the
//! server panics or does not finish within [`DEADLINE`] after the input ends — a hang on bad
//! input is a bug too. [`decode_frames`] runs the frame reader alone.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use amq_protocol::frame::{parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{
    basic, channel, confirm, connection, queue, AMQPClass, BasicProperties,
};
use amq_protocol::types::{FieldTable, LongString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::{encode, FrameReader, PROTOCOL_HEADER};
use super::connection::serve_io;
use super::server::{ServerConfig, Shared};
use crate::broker::{Broker, BrokerConfig, BrokerError};

/// How long a connection may take to finish once its input has ended.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// frame-max the prelude negotiates (the spec's minimum, so size checks are easy to reach).
const FRAME_MAX: u32 = 4096;

/// One broker and runtime reused across inputs (opening a broker per input would make the
/// fuzzer a thousand times slower).
#[derive(Debug)]
pub struct Harness {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
}

impl Harness {
    /// A broker in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Harness, BrokerError> {
        let broker = Arc::new(Broker::open(dir, BrokerConfig::scratch())?);
        let server = ServerConfig {
            heartbeat: 0,
            max_body: 1 << 20,
            ..ServerConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BrokerError::Internal(format!("tokio runtime: {e}")))?;
        Ok(Harness {
            rt,
            shared: Arc::new(Shared::new(broker, server)),
        })
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.shared.broker
    }

    /// Run one fuzz input: its first byte picks a [`prelude`] of valid frames, the rest is
    /// sent as is, then the client half-closes. Returns what the server wrote. The broker is
    /// then emptied (see [`Harness::reset`]), so an input does the same whatever ran before.
    ///
    /// Panics when the server panicked or had not finished [`DEADLINE`] after the input.
    pub fn run(&self, input: &[u8]) -> Vec<u8> {
        let (first, rest) = input.split_first().unwrap_or((&0, &[]));
        let mut bytes = prelude(*first);
        bytes.extend_from_slice(rest);
        let out = self.connection(&bytes);
        self.reset();
        out
    }

    /// Delete every queue and every exchange the inputs declared (the special queues are
    /// declared again, empty). Why: state left by earlier inputs makes crashes hard to
    /// reproduce, and a growing backlog slows every later input.
    pub fn reset(&self) {
        let broker = &self.shared.broker;
        let exchanges: Vec<String> = broker
            .topology()
            .exchanges()
            .map(|e| e.name.to_string())
            .filter(|n| !n.is_empty() && !n.starts_with("amq."))
            .collect();
        for name in exchanges {
            let _ = broker.delete_exchange(&name, false);
        }
        for queue in broker.queues().list() {
            let _ = broker.delete_queue(&queue);
            self.shared.forget_queue(&queue);
        }
        let special = broker.special_queues();
        for name in [&special.dead_letter, &special.quarantine] {
            if let Ok(q) = crate::queue::QueueName::new(name.clone()) {
                let _ = broker.declare_queue(&q, crate::queue::QueueConfig::default());
            }
        }
    }

    /// Feed `bytes` to a fresh connection and half-close; returns what the server wrote.
    pub fn connection(&self, bytes: &[u8]) -> Vec<u8> {
        let shared = self.shared.clone();
        self.rt.block_on(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let (read, write) = tokio::io::split(server);
            let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
            let task = tokio::spawn(async move {
                let _ = serve_io(read, write, peer, shared).await;
            });
            let (mut from_server, mut to_server) = tokio::io::split(client);
            let output = tokio::spawn(async move {
                let mut out = Vec::new();
                let _ = from_server.read_to_end(&mut out).await;
                out
            });
            // The server may stop reading (an exception); the rest of the input is moot.
            let _ = to_server.write_all(bytes).await;
            let _ = to_server.shutdown().await;
            match tokio::time::timeout(DEADLINE, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Ok(Err(e)) => panic!("connection task failed: {e}"),
                Err(_) => panic!("connection still running {DEADLINE:?} after its input ended"),
            }
            drop(to_server);
            output.await.unwrap_or_default()
        })
    }
}

/// Valid frames that put a connection in an interesting state before the fuzzed bytes:
/// `n % 4` = 0 nothing (the protocol header is fuzzed too), 1 handshake, 2 handshake and
/// channel 1 open, 3 that plus a declared queue, confirm mode, one publish and a consumer.
pub fn prelude(n: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let level = n % 4;
    if level == 0 {
        return out;
    }
    out.extend_from_slice(&PROTOCOL_HEADER);
    let conn = |m| AMQPFrame::Method(0, AMQPClass::Connection(m));
    let mut frames = vec![
        conn(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from("\0guest\0guest"),
            locale: "en_US".into(),
        })),
        conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 16,
            frame_max: FRAME_MAX,
            heartbeat: 0,
        })),
        conn(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    ];
    if level >= 2 {
        frames.push(AMQPFrame::Method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ));
    }
    if level >= 3 {
        frames.extend([
            AMQPFrame::Method(
                1,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: "fuzz".into(),
                    passive: false,
                    durable: true,
                    exclusive: false,
                    auto_delete: false,
                    nowait: false,
                    arguments: FieldTable::default(),
                })),
            ),
            AMQPFrame::Method(
                1,
                AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                    nowait: false,
                })),
            ),
            AMQPFrame::Method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: "".into(),
                    routing_key: "fuzz".into(),
                    mandatory: true,
                    immediate: false,
                })),
            ),
            AMQPFrame::Header(
                1,
                AMQPContentHeader {
                    class_id: 60,
                    body_size: 2,
                    properties: BasicProperties::default(),
                },
            ),
            AMQPFrame::Body(1, b"hi".to_vec()),
            AMQPFrame::Method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                    queue: "fuzz".into(),
                    consumer_tag: "".into(),
                    no_local: false,
                    no_ack: false,
                    exclusive: false,
                    nowait: false,
                    arguments: FieldTable::default(),
                })),
            ),
        ]);
    }
    for f in &frames {
        encode(f, &mut out).expect("prelude frames encode");
    }
    out
}

/// Decode `input` as a stream of frames until the first error, as a connection's reader
/// does; every frame decoded must encode again and decode to the same frame.
pub fn decode_frames(input: &[u8]) {
    let mut reader = FrameReader::new(input, 1 << 20);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    loop {
        // Reading from a slice never waits: one poll settles each frame.
        let poll = pin!(reader.read_frame()).as_mut().poll(&mut cx);
        let Poll::Ready(Ok(frame)) = poll else {
            return;
        };
        let mut bytes = Vec::new();
        if encode(&frame, &mut bytes).is_err() {
            continue;
        }
        match parse_frame(bytes.as_slice()) {
            Ok((_, again)) => assert_eq!(again, frame, "a decoded frame re-encodes differently"),
            Err(e) => panic!("our encoding of {frame:?} does not decode: {e:?}"),
        }
    }
}
