//! `connection.blocked`/`unblocked`: while the broker's resource alarm is raised (here: the
//! free-disk threshold set above any disk's size), clients that announced the capability are
//! told, and no connection's publishes are read until it clears.

use std::time::Duration;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, confirm, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable};
use switchyard::queue::{QueueConfig, QueueName};

use super::clients::connect;
use super::raw::Raw;
use super::Server;

fn blocked_capability() -> FieldTable {
    let mut caps = FieldTable::default();
    caps.insert("connection.blocked".into(), AMQPValue::Boolean(true));
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props
}

async fn publish(raw: &mut Raw, queue: &str, body: &[u8]) {
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
            body_size: body.len() as u64,
            properties: BasicProperties::default(),
        },
    ))
    .await;
    raw.send(AMQPFrame::Body(1, body.to_vec())).await;
}

async fn confirm_mode(raw: &mut Raw) {
    raw.open_channel(1).await;
    raw.send(AMQPFrame::Method(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    ))
    .await;
    let ok = raw.next().await;
    assert!(
        matches!(
            ok,
            AMQPFrame::Method(1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))
        ),
        "{ok:?}"
    );
}

/// No frame arrives within `wait`.
async fn silent(raw: &mut Raw, wait: Duration) -> bool {
    tokio::time::timeout(wait, raw.reader.read_frame())
        .await
        .is_err()
}

fn messages(server: &Server, queue: &str) -> u64 {
    server
        .broker
        .queues()
        .stats(&QueueName::new(queue).unwrap())
        .unwrap()
        .messages
}

#[tokio::test]
async fn publishes_wait_for_the_alarm_to_clear_and_capable_clients_are_told() {
    let server = Server::start().await;
    let q = QueueName::new("blk").unwrap();
    server
        .broker
        .declare_queue(&q, QueueConfig::default())
        .unwrap();
    let mut capable = Raw::open_with(&server, blocked_capability()).await;
    confirm_mode(&mut capable).await;
    let mut plain = Raw::open(&server).await;
    confirm_mode(&mut plain).await;

    let reason = server.broker.set_disk_free_limit(u64::MAX);
    assert!(reason.is_some_and(|r| r.contains("disk")));
    let frame = capable.next().await;
    let AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Blocked(b))) = frame
    else {
        panic!("expected connection.blocked, got {frame:?}")
    };
    assert!(b.reason.as_str().contains("disk"), "{}", b.reason);

    publish(&mut capable, "blk", b"one").await;
    publish(&mut plain, "blk", b"two").await;
    // Held: neither publish is read, so nothing is stored and nothing confirmed; the client
    // without the capability is not told anything.
    assert!(silent(&mut capable, Duration::from_millis(400)).await);
    assert!(silent(&mut plain, Duration::from_millis(50)).await);
    assert_eq!(messages(&server, "blk"), 0);

    assert_eq!(server.broker.set_disk_free_limit(0), None);
    let (a, b) = (capable.next().await, capable.next().await);
    let unblocked = |f: &AMQPFrame| {
        matches!(
            f,
            AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Unblocked(_))
            )
        )
    };
    let acked = |f: &AMQPFrame| {
        matches!(
            f,
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(_)))
        )
    };
    assert!(
        (unblocked(&a) && acked(&b)) || (acked(&a) && unblocked(&b)),
        "expected unblocked and the publish's ack, got {a:?}, {b:?}"
    );
    let ack = plain.next().await;
    assert!(acked(&ack), "{ack:?}");
    assert_eq!(messages(&server, "blk"), 2);
}

#[tokio::test]
async fn lapin_sees_blocked_and_unblocked() {
    let server = Server::start().await;
    let (conn, _ch) = connect(&server).await;
    let until = |want: bool| {
        let conn = &conn;
        async move {
            for _ in 0..500 {
                if conn.status().blocked() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("lapin's blocked status never became {want}");
        }
    };
    assert!(!conn.status().blocked());
    server.broker.set_disk_free_limit(u64::MAX);
    until(true).await;
    server.broker.set_disk_free_limit(0);
    until(false).await;
}
