//! AMQP over TLS (amqps) with lapin trusting a certificate made in the test; the TLS listener
//! shares the connection limit and shutdown with the plain one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::*;
use lapin::tcp::OwnedTLSConfig;
use lapin::{BasicProperties, Connection, DefaultConnectionBuilder};
use switchyard::amqp::{run_listeners, Listener, ServerConfig, Shared};
use switchyard::broker::Broker;
use switchyard::tls::Tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::clients::s;
use crate::support::tls::TestCert;

/// A broker with a plain and a TLS AMQP listener.
struct TlsServer {
    plain: SocketAddr,
    tls: SocketAddr,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TlsServer {
    async fn start(tls: Tls, config: ServerConfig) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(Broker::open(dir.path(), Default::default()).unwrap());
        let shared = Arc::new(Shared::new(broker, config));
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let secure = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), secure.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(run_listeners(
            vec![Listener::plain(plain), Listener::tls(secure, tls)],
            shared.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        TlsServer {
            plain: plain_addr,
            tls: tls_addr,
            shared,
            _dir: dir,
            _stop: stop,
        }
    }

    async fn connect_tls(&self, cert: &TestCert) -> lapin::Result<Connection> {
        DefaultConnectionBuilder::new()?
            .with_uri_str(format!(
                "amqps://guest:guest@127.0.0.1:{}/%2f",
                self.tls.port()
            ))
            .with_tls_config(OwnedTLSConfig {
                identity: None,
                cert_chain: Some(cert.pem.clone()),
            })
            .connect()
            .await
    }
}

#[tokio::test]
async fn lapin_publishes_with_confirms_and_consumes_over_amqps() {
    let cert = TestCert::new();
    let server = TlsServer::start(cert.tls(), ServerConfig::default()).await;
    let conn = server
        .connect_tls(&cert)
        .await
        .expect("lapin connects over TLS");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        s("tls-q"),
        QueueDeclareOptions::default(),
        Default::default(),
    )
    .await
    .unwrap();
    for i in 0..20 {
        let confirm = ch
            .basic_publish(
                s(""),
                s("tls-q"),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "publish {i}: {confirm:?}");
    }
    let listed = server.shared.registry.connections();
    assert_eq!(
        listed.len(),
        1,
        "the TLS connection is registered: {listed:?}"
    );

    let mut consumer = ch
        .basic_consume(
            s("tls-q"),
            s("c"),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();
    for i in 0..20 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery")
            .unwrap()
            .unwrap();
        assert_eq!(d.data, format!("m{i}").as_bytes());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    conn.close(200, s("bye")).await.unwrap();
}

/// A plain AMQP client on the TLS port gets no AMQP answer, just a closed socket (after
/// at most a TLS alert); the listener goes on serving TLS clients.
#[tokio::test]
async fn plain_client_on_the_tls_port_is_closed_and_the_listener_keeps_serving() {
    let cert = TestCert::new();
    let server = TlsServer::start(cert.tls(), ServerConfig::default()).await;
    for _ in 0..3 {
        let mut raw = TcpStream::connect(server.tls).await.unwrap();
        raw.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut got))
            .await
            .expect("the server closes the socket")
            .ok();
        assert!(
            !got.starts_with(b"AMQP"),
            "no AMQP on the TLS port: {got:?}"
        );
        assert!(got.len() < 64, "at most an alert: {got:?}");
    }
    let conn = server.connect_tls(&cert).await.expect("TLS still served");
    conn.close(200, s("bye")).await.unwrap();
    // A TLS client on the plain port fails too, without harm to that listener.
    let plain = format!("amqps://guest:guest@127.0.0.1:{}/%2f", server.plain.port());
    let wrong = DefaultConnectionBuilder::new()
        .unwrap()
        .with_uri_str(plain)
        .with_tls_config(OwnedTLSConfig {
            identity: None,
            cert_chain: Some(cert.pem.clone()),
        });
    let failed = tokio::time::timeout(Duration::from_secs(20), wrong.connect()).await;
    assert!(
        !matches!(failed, Ok(Ok(_))),
        "TLS on the plain port must fail"
    );
    let conn = Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", server.plain),
        Default::default(),
    )
    .await
    .expect("plain AMQP still served");
    conn.close(200, s("bye")).await.unwrap();
}

/// `max_connections` counts TLS connections from their TCP accept on, across both listeners;
/// a client that never finishes its handshake gives its slot back at the handshake timeout.
#[tokio::test]
async fn a_stalled_handshake_holds_a_slot_only_until_the_timeout() {
    let cert = TestCert::new();
    let timeout = Duration::from_secs(2);
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = TlsServer::start(cert.tls().with_handshake_timeout(timeout), config).await;
    let stalled = TcpStream::connect(server.tls).await.unwrap();
    let started = std::time::Instant::now();
    let refused = Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", server.plain),
        Default::default(),
    )
    .await;
    if started.elapsed() < timeout {
        match refused {
            Ok(_) => panic!("the stalled handshake holds the only slot"),
            Err(e) => assert!(format!("{e:?}").contains("connection limit"), "{e:?}"),
        }
    }
    tokio::time::sleep(timeout.saturating_sub(started.elapsed()) + Duration::from_millis(500))
        .await;
    let conn = server
        .connect_tls(&cert)
        .await
        .expect("the slot is free again");
    drop(stalled);
    conn.close(200, s("bye")).await.unwrap();
}
