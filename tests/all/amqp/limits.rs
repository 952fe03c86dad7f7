//! Configured limits answer with the proper AMQP error, as RabbitMQ does where it has the
//! limit: an oversize message or too many header entries is 406 on the channel (the connection
//! and its other channels live on), a header above frame-max is 501, a channel above the
//! negotiated channel-max is 504, one connection more than `max_connections` is told 530 after
//! its handshake.

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use switchyard::amqp::{code, ServerConfig};
use switchyard::queue::{QueueConfig, QueueName};

use switchyard::amqp::codec::{FrameReader, PROTOCOL_HEADER};
use tokio::io::AsyncWriteExt;

use super::raw::{conn, Raw};
use super::Server;

/// basic.publish + content header (+ body frames of `body` unless `send_body` is false).
async fn publish(raw: &mut Raw, queue: &str, size: u64, headers: FieldTable, body: &[u8]) {
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: queue.into(),
            mandatory: false,
            immediate: false,
        })),
    ))
    .await;
    raw.send(AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: size,
            properties: BasicProperties::default().with_headers(headers),
        },
    ))
    .await;
    for chunk in body.chunks(4000) {
        raw.send(AMQPFrame::Body(1, chunk.to_vec())).await;
    }
}

/// The next frame is `channel.close` with `code` on channel 1; answer close-ok.
async fn expect_channel_close(raw: &mut Raw, code: u16) -> String {
    let frame = raw.next().await;
    let AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) = frame else {
        panic!("expected channel.close {code}, got {frame:?}")
    };
    assert_eq!(c.reply_code, code, "{}", c.reply_text);
    assert_eq!(
        (c.class_id, c.method_id),
        (60, 40),
        "the close names basic.publish"
    );
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    ))
    .await;
    c.reply_text.to_string()
}

fn messages(server: &Server, queue: &str) -> u64 {
    let q = QueueName::new(queue).unwrap();
    server.broker.queues().stats(&q).unwrap().messages
}

fn headers(n: usize) -> FieldTable {
    let mut t = FieldTable::default();
    for i in 0..n {
        t.insert(
            ShortString::from(format!("h{i}")),
            AMQPValue::LongLongInt(i as i64),
        );
    }
    t
}

#[tokio::test]
async fn an_oversize_message_is_406_on_its_channel_and_the_connection_lives() {
    let server = Server::with(ServerConfig {
        max_body: 10_000,
        ..ServerConfig::default()
    })
    .await;
    let q = QueueName::new("sized").unwrap();
    server
        .broker
        .declare_queue(&q, QueueConfig::default())
        .unwrap();
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    // The body frames after the refused header are dropped by the closing channel.
    publish(
        &mut raw,
        "sized",
        10_001,
        FieldTable::default(),
        &[7; 10_001],
    )
    .await;
    let text = expect_channel_close(&mut raw, code::PRECONDITION_FAILED).await;
    assert!(
        text.contains("message size 10001 is larger than configured max size 10000"),
        "{text}"
    );
    // The same connection, channel 1 reopened: exactly the limit is accepted.
    raw.open_channel(1).await;
    publish(
        &mut raw,
        "sized",
        10_000,
        FieldTable::default(),
        &[7; 10_000],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while messages(&server, "sized") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the message at the limit was not stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(messages(&server, "sized"), 1);
}

#[tokio::test]
async fn too_many_header_entries_are_406_nested_ones_counted() {
    let server = Server::with(ServerConfig {
        max_header_count: 8,
        ..ServerConfig::default()
    })
    .await;
    let q = QueueName::new("hdrs").unwrap();
    server
        .broker
        .declare_queue(&q, QueueConfig::default())
        .unwrap();
    let mut raw = Raw::open(&server).await;
    raw.open_channel(1).await;
    publish(&mut raw, "hdrs", 1, headers(9), b"x").await;
    let text = expect_channel_close(&mut raw, code::PRECONDITION_FAILED).await;
    assert!(
        text.contains("9 header entries") && text.contains("limit of 8"),
        "{text}"
    );
    // 2 top-level entries, but a nested table and an array bring them to 9.
    raw.open_channel(1).await;
    let mut nested = headers(2);
    nested.insert("t".into(), AMQPValue::FieldTable(headers(3)));
    nested.insert(
        "a".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(true); 2])),
    );
    publish(&mut raw, "hdrs", 1, nested, b"x").await;
    let text = expect_channel_close(&mut raw, code::PRECONDITION_FAILED).await;
    assert!(text.contains("9 header entries"), "{text}");
    // Exactly at the limit: stored.
    raw.open_channel(1).await;
    publish(&mut raw, "hdrs", 1, headers(8), b"x").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while messages(&server, "hdrs") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the message at the limit was not stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_header_above_frame_max_is_501() {
    let server = Server::start().await;
    let mut raw = Raw::open(&server).await; // frame-max 4096
    raw.open_channel(1).await;
    let mut big = FieldTable::default();
    big.insert(
        "big".into(),
        AMQPValue::LongString(LongString::from("x".repeat(8000))),
    );
    publish(&mut raw, "anywhere", 1, big, b"").await;
    let text = raw.expect_connection_close(code::FRAME_ERROR).await;
    assert!(
        text.contains("frame-max") || text.contains("frame"),
        "{text}"
    );
}

#[tokio::test]
async fn a_channel_above_the_negotiated_channel_max_is_504() {
    let server = Server::with(ServerConfig {
        channel_max: 3,
        ..ServerConfig::default()
    })
    .await;
    let mut raw = Raw::open(&server).await; // asks for 16; min(16, 3) = 3
    raw.open_channel(3).await;
    raw.send(AMQPFrame::Method(
        4,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    ))
    .await;
    let text = raw.expect_connection_close(code::CHANNEL_ERROR).await;
    assert!(text.contains("channel 4 is above channel-max 3"), "{text}");
}

#[tokio::test]
async fn one_connection_over_the_limit_is_told_530_and_a_freed_slot_is_reused() {
    let server = Server::with(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let first = Raw::open(&server).await;
    let _second = Raw::open(&server).await;
    // The third gets through start and tune, then connection.close instead of open-ok.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let text = refused_handshake(stream).await;
    assert!(text.contains("connection limit (2) reached"), "{text}");
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        match try_open(stream).await {
            Ok(()) => break,
            Err(text) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no slot freed: {text}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Handshake on `stream`: `Ok` at open-ok, `Err(reply text)` at a 530 close.
async fn try_open(stream: tokio::net::TcpStream) -> Result<(), String> {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, 1 << 20);
    write.write_all(&PROTOCOL_HEADER).await.unwrap();
    let send = |f: AMQPFrame| super::raw::bytes(&f);
    assert!(matches!(
        next(&mut reader).await,
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
    ));
    let start_ok = send(conn(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: FieldTable::default(),
        mechanism: "PLAIN".into(),
        response: LongString::from("\0guest\0guest"),
        locale: "en_US".into(),
    })));
    write.write_all(&start_ok).await.unwrap();
    assert!(matches!(
        next(&mut reader).await,
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
    ));
    let mut rest = send(conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max: 16,
        frame_max: 4096,
        heartbeat: 0,
    })));
    rest.extend(send(conn(connection::AMQPMethod::Open(connection::Open {
        virtual_host: "/".into(),
    }))));
    write.write_all(&rest).await.unwrap();
    match next(&mut reader).await {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => Ok(()),
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, code::NOT_ALLOWED, "{}", c.reply_text);
            assert_eq!(
                (c.class_id, c.method_id),
                (10, 40),
                "the close names connection.open"
            );
            Err(c.reply_text.to_string())
        }
        other => panic!("expected open-ok or close, got {other:?}"),
    }
}

async fn next(reader: &mut FrameReader<tokio::net::tcp::OwnedReadHalf>) -> AMQPFrame {
    tokio::time::timeout(std::time::Duration::from_secs(5), reader.read_frame())
        .await
        .expect("a frame within 5 s")
        .expect("a frame")
}

async fn refused_handshake(stream: tokio::net::TcpStream) -> String {
    try_open(stream)
        .await
        .expect_err("the connection over the limit must be refused")
}
