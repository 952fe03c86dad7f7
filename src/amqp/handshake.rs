//! The connection handshake: start/start-ok (PLAIN), tune/tune-ok, open/open-ok.
//!
//! Runs before the writer task exists, so it writes frames directly. Every step has a timeout
//! ([`HANDSHAKE_TIMEOUT`]) so a silent client cannot hold a connection slot forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::codec::{encode, FrameReader, ReadError};
use super::convert::short;
use super::error::AmqpError;
use super::server::Shared;
use crate::auth::Permissions;

/// How long a client has for each handshake step.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest frame-max a client may ask for (the spec's frame-min-size is 4096).
const FRAME_MIN: u32 = 4096;

/// What the handshake settled.
#[derive(Debug, Clone)]
pub struct Tuned {
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub user: String,
    /// The user's permissions in the vhost it opened.
    pub permissions: Arc<Permissions>,
    /// The client announced the `connection.blocked` capability.
    pub blocked_capable: bool,
}

pub(crate) async fn write_direct<W: AsyncWrite + Unpin>(
    write: &mut W,
    frame: &AMQPFrame,
) -> Result<(), ReadError> {
    let mut buf = Vec::new();
    encode(frame, &mut buf).map_err(ReadError::Protocol)?;
    write.write_all(&buf).await?;
    write.flush().await?;
    Ok(())
}

pub(crate) async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, ReadError>>,
) -> Result<T, ReadError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, f)
        .await
        .map_err(|_| ReadError::Io(std::io::ErrorKind::TimedOut.into()))?
}

/// Read the next handshake method of the connection class, or fail with 505/504.
async fn expect<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<connection::AMQPMethod, ReadError> {
    loop {
        match timed(reader.read_frame()).await? {
            AMQPFrame::Heartbeat => continue,
            AMQPFrame::Method(0, AMQPClass::Connection(m)) => return Ok(m),
            AMQPFrame::Method(0, _) => {
                return Err(ReadError::Protocol(AmqpError::unexpected_frame(
                    "expected a connection method during the handshake",
                )))
            }
            _ => {
                return Err(ReadError::Protocol(AmqpError::channel_error(
                    "frame on a channel before the connection is open",
                )))
            }
        }
    }
}

fn refuse(err: AmqpError) -> ReadError {
    ReadError::Protocol(err)
}

pub(crate) async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    write: &mut W,
    peer: SocketAddr,
    shared: &Shared,
    refusal: Option<AmqpError>,
) -> Result<Tuned, ReadError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let start = connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: server_properties(),
        mechanisms: LongString::from("PLAIN"),
        locales: LongString::from("en_US"),
    };
    let start = AMQPClass::Connection(connection::AMQPMethod::Start(start));
    write_direct(write, &AMQPFrame::Method(0, start)).await?;

    let connection::AMQPMethod::StartOk(start_ok) = expect(reader).await? else {
        return Err(refuse(
            AmqpError::unexpected_frame("expected connection.start-ok").on(10, 11),
        ));
    };
    if start_ok.mechanism.as_str() != "PLAIN" {
        return Err(refuse(
            AmqpError::access_refused(format!(
                "authentication mechanism {} is not supported; use PLAIN",
                start_ok.mechanism
            ))
            .as_connection()
            .on(10, 11),
        ));
    }
    let blocked_capable = has_capability(&start_ok.client_properties, "connection.blocked");
    let vhost = "/";
    let (user, permissions) = shared
        .login(start_ok.response.as_bytes(), peer.ip(), vhost)
        .map_err(|e| refuse(e.as_connection().on(10, 11)))?;

    let tune = connection::Tune {
        channel_max: config.channel_max,
        frame_max: config.frame_max,
        heartbeat: config.heartbeat,
    };
    let tune = AMQPClass::Connection(connection::AMQPMethod::Tune(tune));
    write_direct(write, &AMQPFrame::Method(0, tune)).await?;
    let connection::AMQPMethod::TuneOk(ok) = expect(reader).await? else {
        return Err(refuse(
            AmqpError::unexpected_frame("expected connection.tune-ok").on(10, 31),
        ));
    };
    let frame_max = match ok.frame_max {
        0 => config.frame_max,
        n if n < FRAME_MIN => {
            return Err(refuse(
                AmqpError::not_allowed(format!("frame-max {n} is below the minimum {FRAME_MIN}"))
                    .on(10, 31),
            ))
        }
        n => n.min(config.frame_max),
    };
    let channel_max = match ok.channel_max {
        0 => config.channel_max,
        n => n.min(config.channel_max),
    };
    reader.set_frame_max(frame_max);

    let connection::AMQPMethod::Open(open) = expect(reader).await? else {
        return Err(refuse(
            AmqpError::unexpected_frame("expected connection.open").on(10, 40),
        ));
    };
    if open.virtual_host.as_str() != "/" {
        return Err(refuse(
            AmqpError::not_allowed(format!(
                "virtual host {:?} does not exist; only \"/\" is served",
                open.virtual_host.as_str()
            ))
            .on(10, 40),
        ));
    }
    let Some(permissions) = permissions else {
        return Err(refuse(
            AmqpError::not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{user}': grant it permissions \
                 in the definitions file"
            ))
            .on(10, 40),
        ));
    };
    if let Some(why) = refusal {
        return Err(refuse(why.on(10, 40)));
    }
    let open_ok = AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {}));
    write_direct(write, &AMQPFrame::Method(0, open_ok)).await?;
    Ok(Tuned {
        frame_max,
        channel_max,
        heartbeat: ok.heartbeat,
        user,
        permissions,
        blocked_capable,
    })
}

/// `client-properties.capabilities.<name>` is `true`.
fn has_capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

fn server_properties() -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "per_consumer_qos",
        "authentication_failure_close",
        "connection.blocked",
    ] {
        caps.insert(short(cap), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert(short("product"), AMQPValue::LongString("Switchyard".into()));
    props.insert(
        short("version"),
        AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
    );
    props.insert(short("platform"), AMQPValue::LongString("Rust".into()));
    props.insert(short("capabilities"), AMQPValue::FieldTable(caps));
    props
}
