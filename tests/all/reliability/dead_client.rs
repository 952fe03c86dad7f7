//! Clients that die: a consumer whose connection is reset while it holds unacked messages
//! (they go to another consumer, marked redelivered), and a publisher that vanishes in the
//! middle of a message's frames (nothing of it is stored; the broker serves on).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};

use super::process::{self, connect, Serve};
use super::proxy::Proxy;

const JOBS: usize = 500;
const HELD: u16 = 100;

fn addr(serve: &Serve) -> std::net::SocketAddr {
    serve
        .amqp
        .trim_start_matches("amqp://guest:guest@")
        .trim_end_matches("/%2f")
        .parse()
        .unwrap()
}

async fn declare(ch: &Channel, q: &str) {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
}

async fn count(ch: &Channel, q: &str) -> u32 {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reset_with_unacked_messages_gets_them_redelivered_to_another() {
    let (_work, data) = process::data_dir();
    let serve = Serve::start(&data, &[]);
    let conn = serve.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "jobs").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::new();
    for i in 0..JOBS {
        let c = ch
            .basic_publish(
                "".into(),
                "jobs".into(),
                BasicPublishOptions::default(),
                format!("job {i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        assert!(matches!(c.await.unwrap(), Confirmation::Ack(_)));
    }

    // The doomed consumer takes HELD messages through the proxy and never acks.
    let proxy = Proxy::start(addr(&serve), None).await;
    let doomed = connect(&proxy.uri()).await;
    let dch = doomed.create_channel().await.unwrap();
    dch.basic_qos(HELD, BasicQosOptions::default())
        .await
        .unwrap();
    let mut dc = dch
        .basic_consume(
            "jobs".into(),
            "doomed".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut held = HashSet::new();
    while held.len() < HELD as usize {
        let d = tokio::time::timeout(Duration::from_secs(10), dc.next())
            .await
            .expect("deliveries to the doomed consumer")
            .unwrap()
            .unwrap();
        held.insert(String::from_utf8(d.data.clone()).unwrap());
    }

    // The survivor starts, then the doomed connection is reset (no connection.close).
    let sch = conn.create_channel().await.unwrap();
    sch.basic_qos(50, BasicQosOptions::default()).await.unwrap();
    let mut sc = sch
        .basic_consume(
            "jobs".into(),
            "survivor".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    proxy.cut();
    let mut seen: HashMap<String, bool> = HashMap::new();
    while seen.len() < JOBS {
        let d = tokio::time::timeout(Duration::from_secs(10), sc.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {JOBS} jobs reached the survivor", seen.len()))
            .unwrap()
            .unwrap();
        let body = String::from_utf8(d.data.clone()).unwrap();
        assert!(
            seen.insert(body.clone(), d.redelivered).is_none(),
            "{body} twice"
        );
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    for (body, redelivered) in &seen {
        assert_eq!(
            *redelivered,
            held.contains(body),
            "{body}: redelivered flag"
        );
    }
    assert_eq!(count(&sch, "jobs").await, 0);

    // A publisher vanishes in the middle of a 1 MiB message's body frames.
    declare(&ch, "halves").await;
    let proxy = Proxy::start(addr(&serve), Some(64 * 1024)).await;
    let vanishing = connect(&proxy.uri()).await;
    let vch = vanishing.create_channel().await.unwrap();
    let _ = vch
        .basic_publish(
            "".into(),
            "halves".into(),
            BasicPublishOptions::default(),
            &vec![b'h'; 1 << 20],
            BasicProperties::default(),
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !proxy.finished() {
        assert!(std::time::Instant::now() < deadline, "the proxy never cut");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(vanishing);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&ch, "halves").await,
        0,
        "part of a message was stored"
    );
    let c = ch
        .basic_publish(
            "".into(),
            "halves".into(),
            BasicPublishOptions::default(),
            b"whole",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert!(
        matches!(c.await.unwrap(), Confirmation::Ack(_)),
        "the broker serves on"
    );
    assert_eq!(count(&ch, "halves").await, 1);
    let _ = conn.close(200, "bye".into()).await;
    serve.stop();
    eprintln!(
        "dead clients: {HELD} unacked messages of a reset consumer redelivered (flag set) to \
         another, {JOBS} jobs each delivered once to it; a publisher cut after 64 KiB of a 1 MiB \
         message left nothing stored"
    );
}
