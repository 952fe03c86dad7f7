//! Users and permissions through lapin: a login needs the right password and a permission
//! entry for `/`; each operation needs RabbitMQ's configure, write or read permission, and a
//! refusal is 403 ACCESS_REFUSED on the channel with RabbitMQ's wording.

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;
use switchyard::amqp::ServerConfig;
use switchyard::auth::Users;
use switchyard::definitions::{apply_users, Definitions};

use super::clients::s;
use super::Server;

/// `app` may configure and read `app.*`, write `app.*` and the default exchange; `nobody` has
/// no permissions; `reader` may only read `app.*`.
async fn server() -> Server {
    let defs: Definitions = serde_json::from_value(json!({
        "users": [
            {"name": "app", "password": "pw"},
            {"name": "reader", "password": "pw"},
            {"name": "nobody", "password": "pw"}
        ],
        "permissions": [
            {"user": "app", "configure": "^app\\.", "write": "^(app\\..*|amq\\.default)$", "read": "^app\\."},
            {"user": "reader", "configure": "", "write": "", "read": "^app\\."}
        ]
    }))
    .unwrap();
    let mut users = Users::with_guest();
    apply_users(&defs.users, &defs.permissions, &mut users).unwrap();
    Server::with(ServerConfig {
        users,
        ..ServerConfig::default()
    })
    .await
}

async fn login(server: &Server, user: &str, password: &str) -> Result<Connection, lapin::Error> {
    let uri = format!("amqp://{user}:{password}@{}/%2f", server.addr);
    Connection::connect(&uri, ConnectionProperties::default()).await
}

/// The channel error's code and text, after the channel was closed by the broker.
fn refused(result: Result<impl std::fmt::Debug, lapin::Error>) -> String {
    let err = result.expect_err("the broker refuses");
    let text = err.to_string();
    assert!(
        text.contains("ACCESS_REFUSED") || text.contains("403"),
        "{text}"
    );
    text
}

async fn channel(conn: &Connection) -> Channel {
    conn.create_channel().await.unwrap()
}

/// `queue.declare` of `name` with default options, on a fresh channel of `conn`.
async fn declare(conn: &Connection, name: &str) -> lapin::Result<lapin::Queue> {
    channel(conn)
        .await
        .queue_declare(s(name), Default::default(), FieldTable::default())
        .await
}

#[tokio::test]
async fn logins_need_the_password_and_a_vhost_permission() {
    let server = server().await;
    assert!(login(&server, "app", "wrong").await.is_err());
    assert!(login(&server, "ghost", "pw").await.is_err());
    let err = login(&server, "nobody", "pw")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("access to vhost '/' refused for user 'nobody'"),
        "{err}"
    );
    let app = login(&server, "app", "pw").await.unwrap();
    app.close(200, "bye".into()).await.unwrap();
    // The broker kept serving through the refusals.
    let guest = login(&server, "guest", "guest").await.unwrap();
    guest.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn configure_covers_declare_and_delete() {
    let server = server().await;
    let app = login(&server, "app", "pw").await.unwrap();
    declare(&app, "app.q").await.unwrap();
    channel(&app)
        .await
        .exchange_declare(
            s("app.x"),
            ExchangeKind::Direct,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let text = refused(declare(&app, "other.q").await);
    assert!(
        text.contains("configure access to queue 'other.q' in vhost '/' refused for user 'app'"),
        "{text}"
    );
    refused(
        channel(&app)
            .await
            .exchange_declare(
                s("other.x"),
                ExchangeKind::Fanout,
                Default::default(),
                FieldTable::default(),
            )
            .await,
    );
    // A server-named queue is `amq.gen-…`, outside `^app\.`.
    refused(declare(&app, "").await);
    // Passive declares only look.
    let ch = channel(&app).await;
    ch.queue_declare(
        s("app.q"),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // guest made `other.q`; app may not delete it.
    let guest = login(&server, "guest", "guest").await.unwrap();
    declare(&guest, "other.q").await.unwrap();
    refused(
        channel(&app)
            .await
            .queue_delete(s("other.q"), Default::default())
            .await,
    );
    assert!(server
        .broker
        .queues()
        .list()
        .iter()
        .any(|q| q.as_str() == "other.q"));
    channel(&app)
        .await
        .queue_delete(s("app.q"), Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn write_and_read_cover_publish_bind_consume_get_and_purge() {
    let server = server().await;
    let app = login(&server, "app", "pw").await.unwrap();
    let ch = channel(&app).await;
    ch.queue_declare(s("app.in"), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    // Write on amq.default is granted.
    let confirm = ch
        .basic_publish(
            s(""),
            s("app.in"),
            Default::default(),
            b"hi",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    // Write on amq.direct is not: the channel closes with 403.
    let ch = channel(&app).await;
    ch.confirm_select(Default::default()).await.unwrap();
    let confirm = ch
        .basic_publish(
            s("amq.direct"),
            s("app.in"),
            Default::default(),
            b"no",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let text = refused(confirm.await);
    assert!(
        text.contains("write access to exchange 'amq.direct'"),
        "{text}"
    );
    // Binding app.in to amq.direct needs read on amq.direct.
    let text = refused(
        channel(&app)
            .await
            .queue_bind(
                s("app.in"),
                s("amq.direct"),
                s("k"),
                Default::default(),
                FieldTable::default(),
            )
            .await,
    );
    assert!(
        text.contains("read access to exchange 'amq.direct'"),
        "{text}"
    );

    // reader may get and consume app.*, but not publish or purge other queues.
    let reader = login(&server, "reader", "pw").await.unwrap();
    let got = channel(&reader)
        .await
        .basic_get(s("app.in"), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message app published");
    assert_eq!(got.delivery.data, b"hi");
    let guest = login(&server, "guest", "guest").await.unwrap();
    declare(&guest, "other.q").await.unwrap();
    refused(
        channel(&reader)
            .await
            .basic_consume(
                s("other.q"),
                s(""),
                Default::default(),
                FieldTable::default(),
            )
            .await,
    );
    refused(
        channel(&reader)
            .await
            .basic_get(s("other.q"), Default::default())
            .await,
    );
    refused(
        channel(&reader)
            .await
            .queue_purge(s("other.q"), Default::default())
            .await,
    );
    channel(&reader)
        .await
        .basic_consume(
            s("app.in"),
            s(""),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Nothing reader was refused reached a queue.
    assert_eq!(
        server
            .broker
            .queues()
            .stats(&switchyard::queue::QueueName::new("app.in").unwrap())
            .unwrap()
            .messages,
        0
    );
}

#[tokio::test]
async fn a_publisher_cannot_claim_another_user_id() {
    let server = server().await;
    let app = login(&server, "app", "pw").await.unwrap();
    let ch = channel(&app).await;
    ch.queue_declare(s("app.ids"), Default::default(), FieldTable::default())
        .await
        .unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    let own = BasicProperties::default().with_user_id(s("app"));
    let ok = ch
        .basic_publish(s(""), s("app.ids"), Default::default(), b"1", own)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ok.is_ack());
    let forged = BasicProperties::default().with_user_id(s("guest"));
    let confirm = ch
        .basic_publish(s(""), s("app.ids"), Default::default(), b"2", forged)
        .await
        .unwrap();
    let err = confirm
        .await
        .expect_err("a forged user_id closes the channel")
        .to_string();
    assert!(
        err.contains("user_id property set to 'guest' but authenticated user was 'app'"),
        "{err}"
    );
    assert_eq!(
        server
            .broker
            .queues()
            .stats(&switchyard::queue::QueueName::new("app.ids").unwrap())
            .unwrap()
            .messages,
        1
    );
}
