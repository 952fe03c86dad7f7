//! The configured limits, set through `SWITCHYARD_*` variables of the real binary, as a real
//! client (lapin) and an HTTP client meet them: an oversize message and too many headers
//! close the channel with 406 and the connection goes on, one connection too many is refused
//! with 530 and a reason, channel-max is what the server offered, one queue too many is 406
//! (403 over HTTP), and an oversize plugin upload is 413. The raw-frame view of the same
//! errors is in `amqp/limits.rs`.

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use super::process::{self, http, put_bytes, Serve};

const ENV: [(&str, &str); 6] = [
    ("SWITCHYARD_MAX_MESSAGE_BYTES", "1000"),
    ("SWITCHYARD_MAX_HEADER_COUNT", "4"),
    ("SWITCHYARD_MAX_CONNECTIONS", "2"),
    ("SWITCHYARD_CHANNEL_MAX", "4"),
    // The dead-letter and quarantine queues count: 2 left for clients.
    ("SWITCHYARD_MAX_QUEUES", "4"),
    ("SWITCHYARD_MAX_PLUGIN_BYTES", "4096"),
];

async fn publish_error(conn: &Connection, body: &[u8], headers: FieldTable) -> String {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let sent = ch
        .basic_publish(
            "".into(),
            "limited".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_headers(headers),
        )
        .await;
    let outcome = match sent {
        Ok(confirm) => confirm.await.map(|c| format!("{c:?}")),
        Err(e) => Err(e),
    };
    // The channel is closed by the server: the confirm fails, or the next call does.
    match outcome {
        Err(e) => e.to_string(),
        Ok(c) => ch
            .basic_qos(1, BasicQosOptions::default())
            .await
            .map(|_| format!("no error; confirm {c}"))
            .unwrap_or_else(|e| e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_limits_give_clear_errors_to_real_clients() {
    let (_work, data) = process::data_dir();
    let serve = Serve::start(&data, &ENV);
    let conn = serve.connect().await;
    assert_eq!(
        conn.configuration().channel_max(),
        4,
        "channel-max offered in tune"
    );
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "limited".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let e = publish_error(&conn, &[0; 1001], FieldTable::default()).await;
    assert!(
        e.contains("message size 1001 is larger than configured max size 1000"),
        "{e}"
    );
    let mut headers = FieldTable::default();
    for i in 0..5 {
        headers.insert(format!("h{i}").into(), AMQPValue::Boolean(true));
    }
    let e = publish_error(&conn, b"x", headers).await;
    assert!(
        e.contains("5 header entries") && e.contains("limit of 4"),
        "{e}"
    );
    // The connection lives on: a message at the limits is confirmed.
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let ok = ch
        .basic_publish(
            "".into(),
            "limited".into(),
            BasicPublishOptions::default(),
            &[0; 1000],
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ok.is_ack(), "{ok:?}");

    // Queues: one more client queue fits, the next is refused.
    ch.queue_declare(
        "second".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let e = ch
        .queue_declare(
            "third".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("queue limit (4) is reached"), "{e}");
    let (status, body) = http(
        &serve,
        "PUT",
        "/api/queues/fourth",
        Some(&serde_json::json!({})),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("queue limit"),
        "{body}"
    );

    // Connections: the second is fine, the third is told why.
    let second = serve.connect().await;
    let third = Connection::connect(&serve.amqp, ConnectionProperties::default()).await;
    let e = match third {
        Ok(_) => panic!("a third connection was accepted with max_connections = 2"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("connection limit (2) reached"), "{e}");
    let _ = second.close(200, "bye".into()).await;

    // Plugin uploads above max_plugin_bytes: 413 before any compile.
    let (status, body) = put_bytes(&serve, "/api/plugins/big", &vec![0u8; 5000]);
    assert_eq!(status, 413, "{body}");
    let _ = conn.close(200, "bye".into()).await;
    serve.stop();
}
