//! Protocol-level tests with a raw TCP client writing frames: handshake and every kind of bad
//! input gets the right close code, and other connections are unaffected.

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{FieldTable, LongString};
use switchyard::amqp::code;
use switchyard::amqp::codec::{encode, FrameReader, PROTOCOL_HEADER};
use switchyard::queue::{ConsumerOptions, QueueConfig, QueueName};
use switchyard::routing::{Exchange, ExchangeKind, FailurePolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::Server;

pub(super) struct Raw {
    pub(super) reader: FrameReader<OwnedReadHalf>,
    pub(super) write: OwnedWriteHalf,
}

pub(super) fn bytes(frame: &AMQPFrame) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(frame, &mut buf).unwrap();
    buf
}

pub(super) fn conn(m: connection::AMQPMethod) -> AMQPFrame {
    AMQPFrame::Method(0, AMQPClass::Connection(m))
}

impl Raw {
    /// Connected, authenticated, tuned (frame-max 4096) and opened.
    pub(super) async fn open(server: &Server) -> Raw {
        Raw::open_with(server, FieldTable::default()).await
    }

    /// [`Raw::open`] announcing `client_properties` (capabilities) in start-ok.
    pub(super) async fn open_with(server: &Server, client_properties: FieldTable) -> Raw {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        write.write_all(&PROTOCOL_HEADER).await.unwrap();
        let mut raw = Raw {
            reader: FrameReader::new(read, 1 << 20),
            write,
        };
        let start = raw.next().await;
        assert!(
            matches!(
                start,
                AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
            ),
            "{start:?}"
        );
        raw.send(conn(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties,
            mechanism: "PLAIN".into(),
            response: LongString::from("\0guest\0guest"),
            locale: "en_US".into(),
        })))
        .await;
        let tune = raw.next().await;
        let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) = tune
        else {
            panic!("expected tune, got {tune:?}")
        };
        assert_eq!(t.frame_max, 131_072);
        raw.send(conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 16,
            frame_max: 4096,
            heartbeat: 0,
        })))
        .await;
        raw.send(conn(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })))
        .await;
        let ok = raw.next().await;
        assert!(
            matches!(
                ok,
                AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
            ),
            "{ok:?}"
        );
        raw
    }

    pub(super) async fn send(&mut self, frame: AMQPFrame) {
        self.write.write_all(&bytes(&frame)).await.unwrap();
    }

    pub(super) async fn send_bytes(&mut self, b: &[u8]) {
        self.write.write_all(b).await.unwrap();
    }

    pub(super) async fn next(&mut self) -> AMQPFrame {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.reader.read_frame())
            .await
            .expect("a frame within 5s")
            .expect("a frame")
    }

    /// The next frame must be `connection.close` with `code`; then the server closes.
    pub(super) async fn expect_connection_close(&mut self, code: u16) -> String {
        let frame = self.next().await;
        let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) = frame
        else {
            panic!("expected connection.close {code}, got {frame:?}")
        };
        assert_eq!(c.reply_code, code, "{}", c.reply_text);
        self.send(conn(connection::AMQPMethod::CloseOk(
            connection::CloseOk {},
        )))
        .await;
        let end =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.reader.read_frame()).await;
        assert!(
            matches!(end, Ok(Err(_))),
            "server must close the socket, got {end:?}"
        );
        c.reply_text.to_string()
    }

    pub(super) async fn open_channel(&mut self, id: u16) {
        self.send(AMQPFrame::Method(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ))
        .await;
        let ok = self.next().await;
        assert!(
            matches!(
                ok,
                AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
            ),
            "{ok:?}"
        );
    }
}

#[tokio::test]
async fn handshake_and_clean_close() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(conn(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    })))
    .await;
    let ok = raw.next().await;
    assert!(
        matches!(
            ok,
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))
        ),
        "{ok:?}"
    );
}

#[tokio::test]
async fn bad_protocol_header_gets_ours_and_a_close() {
    let server = Server::start().await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"AMQP\x00\x00\x08\x00").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, PROTOCOL_HEADER);
}

#[tokio::test]
async fn wrong_password_is_403_and_guest_needs_loopback() {
    let server = Server::start().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(&PROTOCOL_HEADER).await.unwrap();
    let mut raw = Raw {
        reader: FrameReader::new(read, 1 << 20),
        write,
    };
    raw.next().await;
    raw.send(conn(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: FieldTable::default(),
        mechanism: "PLAIN".into(),
        response: LongString::from("\0guest\0nope"),
        locale: "en_US".into(),
    })))
    .await;
    raw.expect_connection_close(code::ACCESS_REFUSED).await;

    let config = switchyard::amqp::ServerConfig::default();
    let remote: std::net::IpAddr = "10.1.2.3".parse().unwrap();
    assert!(config.authenticate(b"\0guest\0guest", remote).is_err());
    assert!(config
        .authenticate(b"\0guest\0guest", "127.0.0.1".parse().unwrap())
        .is_ok());
    assert!(config.authenticate(b"garbage", remote).is_err());
}

#[tokio::test]
async fn frame_above_frame_max_is_501() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    // A body frame header announcing 1 MiB, beyond the negotiated 4096: refused before the
    // payload is read.
    let mut header = vec![3u8, 0, 1];
    header.extend_from_slice(&(1u32 << 20).to_be_bytes());
    raw.send_bytes(&header).await;
    raw.expect_connection_close(code::FRAME_ERROR).await;
}

#[tokio::test]
async fn garbage_frame_is_501_and_other_connections_survive() {
    let server = Server::start().await;
    let mut healthy = Raw::open(&server).await;
    let mut raw = Raw::open(&server).await;
    raw.send_bytes(&[0x42, 0, 0, 0, 0, 0, 1, 7, 0xCE]).await;
    raw.expect_connection_close(code::FRAME_ERROR).await;
    // Missing frame-end octet.
    let mut raw = Raw::open(&server).await;
    raw.send_bytes(&[1, 0, 1, 0, 0, 0, 1, 7, 0x00]).await;
    raw.expect_connection_close(code::FRAME_ERROR).await;
    healthy.open_channel(3).await;
}

#[tokio::test]
async fn method_on_unopened_channel_is_504() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.send(AMQPFrame::Method(
        7,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 1,
            global: false,
        })),
    ))
    .await;
    raw.expect_connection_close(code::CHANNEL_ERROR).await;
}

#[tokio::test]
async fn unknown_class_is_540_and_unknown_method_too() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    // Class 99, method 1, no arguments.
    raw.send_bytes(&[1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE])
        .await;
    let text = raw.expect_connection_close(code::NOT_IMPLEMENTED).await;
    assert!(text.contains("class 99"), "{text}");
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send_bytes(&[1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 99, 0xCE])
        .await;
    raw.expect_connection_close(code::NOT_IMPLEMENTED).await;
}

#[tokio::test]
async fn body_longer_than_its_header_is_501() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "nowhere".into(),
            mandatory: false,
            immediate: false,
        })),
    ))
    .await;
    raw.send(AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: 3,
            properties: BasicProperties::default(),
        },
    ))
    .await;
    raw.send(AMQPFrame::Body(1, b"too long".to_vec())).await;
    raw.expect_connection_close(code::FRAME_ERROR).await;
}

#[tokio::test]
async fn content_out_of_order_is_505() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(AMQPFrame::Body(1, b"x".to_vec())).await;
    raw.expect_connection_close(code::UNEXPECTED_FRAME).await;
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_the_channel_with_404() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "missing".into(),
            routing_key: "k".into(),
            mandatory: false,
            immediate: false,
        })),
    ))
    .await;
    raw.send(AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: 0,
            properties: BasicProperties::default(),
        },
    ))
    .await;
    let frame = raw.next().await;
    let AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) = frame else {
        panic!("expected channel.close, got {frame:?}")
    };
    assert_eq!(c.reply_code, code::NOT_FOUND);
    assert_eq!((c.class_id, c.method_id), (60, 40));
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    ))
    .await;
    // The connection is still usable; the channel id can be reopened.
    raw.open_channel(1).await;
}

/// The frames of one publish, as a client writes them.
fn publish_frames(channel: u16, exchange: &str, key: &str, body: &[u8]) -> Vec<u8> {
    let mut out = bytes(&AMQPFrame::Method(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: key.into(),
            mandatory: false,
            immediate: false,
        })),
    ));
    out.extend(bytes(&AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: BasicProperties::default(),
        },
    )));
    out.extend(bytes(&AMQPFrame::Body(channel, body.to_vec())));
    out
}

/// Pipelined publishes arrive many per read and are taken from the read buffer one after the
/// other: a channel exception in the middle of that buffer closes the channel there, and the
/// publishes after it on that channel are dropped (the channel is closing), while another
/// channel's publishes in the same buffer still land.
#[tokio::test]
async fn a_channel_error_inside_one_read_drops_only_what_follows_on_that_channel() {
    let server = Server::start().await;
    let queue = QueueName::new("pipelined").unwrap();
    server
        .broker
        .declare_queue(&queue, QueueConfig::default())
        .unwrap();
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let mut batch = Vec::new();
    for i in 0..3 {
        batch.extend(publish_frames(
            1,
            "",
            "pipelined",
            format!("before {i}").as_bytes(),
        ));
    }
    batch.extend(publish_frames(1, "missing", "k", b"refused"));
    for i in 0..3 {
        batch.extend(publish_frames(
            1,
            "",
            "pipelined",
            format!("after {i}").as_bytes(),
        ));
        batch.extend(publish_frames(
            2,
            "",
            "pipelined",
            format!("other {i}").as_bytes(),
        ));
    }
    raw.send_bytes(&batch).await;
    let frame = raw.next().await;
    let AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) = frame else {
        panic!("expected channel.close, got {frame:?}")
    };
    assert_eq!(c.reply_code, code::NOT_FOUND);
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    ))
    .await;
    // Reopening channel 1 orders us after every frame of the batch.
    raw.open_channel(1).await;
    assert_eq!(
        ready_bodies(&server, queue.as_str()).await,
        ["before 0", "before 1", "before 2", "other 0", "other 1", "other 2"]
    );
}

/// The bodies of the messages ready in queue `q`, in order.
async fn ready_bodies(server: &Server, q: &str) -> Vec<String> {
    let name = QueueName::new(q).unwrap();
    let options = ConsumerOptions {
        push: false,
        ..ConsumerOptions::default()
    };
    let mut consumer = server
        .broker
        .queues()
        .consume(&name, options)
        .await
        .unwrap();
    let mut bodies = Vec::new();
    while let Some(d) = consumer.next_ready().await.unwrap() {
        bodies.push(String::from_utf8(d.message.body.to_vec()).unwrap());
    }
    bodies
}

/// Publishes to an `x-wasm` exchange that arrive in one read are routed as one batch; one that
/// traps the batch router fails alone (dead-lettered), and a publish to another exchange in the
/// same read ends the batch and is routed on its own, in order.
#[tokio::test]
async fn publishes_in_one_read_are_routed_as_a_batch_and_a_bad_one_fails_alone() {
    let server = Server::start().await;
    let wasm = crate::support::plugins::rust_plugin_bytes("test_batch_trapper");
    let plugins = server.broker.plugins();
    plugins.deploy("t", &wasm, Default::default()).unwrap();
    let mut ex = Exchange::new("by-body", ExchangeKind::Wasm { plugin: "t".into() });
    ex.failure_policy = FailurePolicy::DeadLetter;
    server.broker.declare_exchange(ex).unwrap();
    for q in ["a", "b"] {
        let name = QueueName::new(q).unwrap();
        server
            .broker
            .declare_queue(&name, QueueConfig::default())
            .unwrap();
    }
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    let mut read = Vec::new();
    for body in ["a", "b", "trap", "a"] {
        read.extend(publish_frames(1, "by-body", "", body.as_bytes()));
    }
    read.extend(publish_frames(1, "", "b", b"direct"));
    read.extend(publish_frames(1, "by-body", "", b"b"));
    raw.send_bytes(&read).await;
    // Frames are handled in order: once channel 2 is open, every publish above is applied.
    raw.open_channel(2).await;
    assert_eq!(ready_bodies(&server, "a").await, ["a", "a"]);
    assert_eq!(ready_bodies(&server, "b").await, ["b", "direct", "b"]);
    assert_eq!(
        ready_bodies(&server, "switchyard.dead-letter").await,
        ["trap"]
    );
    let stats = plugins.stats("t").unwrap();
    assert_eq!(
        stats.traps, 1,
        "only the lone call of the bad message trapped"
    );
}

#[tokio::test]
async fn heartbeats_are_sent_and_a_silent_client_is_dropped() {
    let server = Server::start().await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (read, write) = stream.into_split();
    let mut raw = Raw {
        reader: FrameReader::new(read, 1 << 20),
        write,
    };
    raw.send_bytes(&PROTOCOL_HEADER).await;
    raw.next().await;
    raw.send(conn(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: FieldTable::default(),
        mechanism: "PLAIN".into(),
        response: LongString::from("\0guest\0guest"),
        locale: "en_US".into(),
    })))
    .await;
    raw.next().await;
    raw.send(conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max: 0,
        frame_max: 0,
        heartbeat: 1,
    })))
    .await;
    raw.send(conn(connection::AMQPMethod::Open(connection::Open {
        virtual_host: "/".into(),
    })))
    .await;
    raw.next().await;
    let started = std::time::Instant::now();
    assert_eq!(raw.next().await, AMQPFrame::Heartbeat);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // We never send a heartbeat back: after two missed intervals the server hangs up.
    let end = tokio::time::timeout(std::time::Duration::from_secs(6), async {
        loop {
            match raw.reader.read_frame().await {
                Ok(AMQPFrame::Heartbeat) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(matches!(end, Ok(Err(_))), "{end:?}");
}

/// Random bytes after a good handshake: the server answers or hangs up, never panics, and a
/// fresh connection still works afterwards.
#[tokio::test]
async fn random_garbage_never_takes_the_server_down() {
    use rand::{Rng, SeedableRng};
    let server = Server::start().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..40 {
        let mut raw = Raw::open(&server).await;
        let len = rng.random_range(1..64);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) {
            // A plausible frame header so the payload reaches the method decoder.
            junk.splice(0..0, [1u8, 0, 1, 0, 0, 0, len as u8]);
            junk.push(0xCE);
        }
        raw.send_bytes(&junk).await;
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            raw.reader.read_frame(),
        )
        .await;
    }
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
}

#[tokio::test]
async fn stopping_the_listener_closes_connections_with_320() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    let Server {
        addr, _stop, _dir, ..
    } = server;
    drop(_stop); // the listener's shutdown future completes
    let close = raw.next().await;
    let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) = close
    else {
        panic!("expected connection.close, got {close:?}");
    };
    assert_eq!(c.reply_code, code::CONNECTION_FORCED, "{c:?}");
    raw.send(conn(connection::AMQPMethod::CloseOk(
        connection::CloseOk {},
    )))
    .await;
    // The listener is gone once the server has finished: new connections are refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
