//! Every kind of bad input at the frame level gets its close code, the failed connection's
//! resources are freed (its exclusive queue deleted, its unacknowledged delivery back in its
//! queue), and another connection carries on. The single cases and their reply texts are in
//! `raw.rs`; this file checks the clean-up for all of them on one server.

use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, channel, queue, AMQPClass, BasicProperties};
use amq_protocol::types::FieldTable;
use switchyard::amqp::code;
use switchyard::message::Message;
use switchyard::queue::{QueueConfig, QueueName};

use tokio::io::AsyncWriteExt;

use super::raw::Raw;
use super::Server;

/// Ways to break a connection after it is set up, and the close code each must get (`None`:
/// the client vanishes mid-frame, so there is no one to send a close to).
fn cases() -> Vec<(&'static str, Vec<u8>, Option<u16>)> {
    let mut over_max = vec![3u8, 0, 1];
    over_max.extend_from_slice(&(1u32 << 20).to_be_bytes());
    let publish = |ch: u16| {
        let mut b = super::raw::bytes(&AMQPFrame::Method(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "nowhere".into(),
                mandatory: false,
                immediate: false,
            })),
        ));
        b.extend(super::raw::bytes(&AMQPFrame::Header(
            ch,
            AMQPContentHeader {
                class_id: 60,
                body_size: 3,
                properties: BasicProperties::default(),
            },
        )));
        b.extend(super::raw::bytes(&AMQPFrame::Body(
            ch,
            b"too long".to_vec(),
        )));
        b
    };
    let close_channel = super::raw::bytes(&AMQPFrame::Method(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    ));
    let mut on_closed = close_channel;
    on_closed.extend(super::raw::bytes(&AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 1,
            global: false,
        })),
    )));
    vec![
        // A frame header promising 100 bytes, 10 sent, then EOF.
        (
            "truncated frame",
            [&[1u8, 0, 1, 0, 0, 0, 100][..], &[0; 10]].concat(),
            None,
        ),
        // The same, but the stream goes on: the byte where frame-end should be is wrong.
        (
            "short frame",
            [&[1u8, 0, 1, 0, 0, 0, 2, 0, 60][..], &[0x01; 8]].concat(),
            Some(code::FRAME_ERROR),
        ),
        ("frame over frame-max", over_max, Some(code::FRAME_ERROR)),
        (
            "garbage",
            vec![0x42, 0, 0, 0, 0, 0, 1, 7, 0xCE],
            Some(code::FRAME_ERROR),
        ),
        (
            "unknown class",
            vec![1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE],
            Some(code::NOT_IMPLEMENTED),
        ),
        (
            "unknown method",
            vec![1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 99, 0xCE],
            Some(code::NOT_IMPLEMENTED),
        ),
        // queue.declare (50.10) whose arguments stop after the ticket.
        (
            "truncated arguments",
            vec![1, 0, 1, 0, 0, 0, 6, 0, 50, 0, 10, 0, 0, 0xCE],
            Some(code::SYNTAX_ERROR),
        ),
        (
            "body longer than its header",
            publish(1),
            Some(code::FRAME_ERROR),
        ),
        (
            "method on a closed channel",
            on_closed,
            Some(code::CHANNEL_ERROR),
        ),
    ]
}

/// Open a connection that owns exclusive queue `exclusive` and holds one unacknowledged
/// delivery from `shared`.
async fn with_resources(server: &Server, exclusive: &str) -> Raw {
    let mut raw = Raw::open(server).await;
    raw.open_channel(1).await;
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: exclusive.into(),
            passive: false,
            durable: false,
            exclusive: true,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    ))
    .await;
    let ok = raw.next().await;
    assert!(
        matches!(
            ok,
            AMQPFrame::Method(1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
        ),
        "{ok:?}"
    );
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "shared".into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    ))
    .await;
    let mut delivered = false;
    for _ in 0..4 {
        if let AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(_))) =
            raw.next().await
        {
            delivered = true;
        }
    }
    assert!(delivered, "the message in 'shared' was not delivered");
    raw
}

#[tokio::test]
async fn every_connection_error_frees_the_connection_and_spares_the_others() {
    let server = Server::start().await;
    let shared = QueueName::new("shared").unwrap();
    server
        .broker
        .declare_queue(&shared, QueueConfig::default())
        .unwrap();
    server
        .broker
        .publish("", "shared", Message::new(&b"held"[..]), false)
        .await
        .unwrap();
    let mut healthy = Raw::open(&server).await;
    for (i, (name, bytes, close)) in cases().into_iter().enumerate() {
        let exclusive = format!("excl-{i}");
        let mut raw = with_resources(&server, &exclusive).await;
        assert_eq!(server.broker.queues().stats(&shared).unwrap().unacked, 1);
        raw.send_bytes(&bytes).await;
        if name == "method on a closed channel" {
            let ok = raw.next().await;
            assert!(
                matches!(
                    ok,
                    AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))
                ),
                "{ok:?}"
            );
        }
        match close {
            Some(code) => {
                let text = raw.expect_connection_close(code).await;
                assert!(!text.is_empty(), "{name}: empty reply text");
            }
            None => {
                raw.write.shutdown().await.unwrap();
                let end = tokio::time::timeout(Duration::from_secs(5), raw.reader.read_frame())
                    .await
                    .unwrap_or_else(|_| panic!("{name}: the server kept the socket open"));
                assert!(
                    end.is_err(),
                    "{name}: expected the socket closed, got {end:?}"
                );
            }
        }
        // Freed: the exclusive queue is gone and the delivery is back in its queue.
        let start = Instant::now();
        loop {
            let excl_gone = server
                .broker
                .queues()
                .config(&QueueName::new(exclusive.clone()).unwrap())
                .is_err();
            let stats = server.broker.queues().stats(&shared).unwrap();
            if excl_gone && stats.unacked == 0 && stats.consumers == 0 {
                assert_eq!(stats.messages, 1, "{name}: the held message was lost");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: resources not freed: exclusive gone {excl_gone}, {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The bystander connection is unaffected throughout.
    healthy.open_channel(5).await;
}
