//! The admin API's TLS listener: an [`axum::serve::Listener`] that yields connections only
//! after their TLS handshake.
//!
//! axum takes connections one `accept` at a time, so handshakes run on their own tasks and
//! finished ones are queued: a client that stalls its handshake delays nobody else, and
//! gives up its place when the handshake timeout ([`Tls::accept`]) passes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;

use crate::tls::Tls;

/// Handshakes in progress at once; further connections are closed at once until one ends.
const MAX_HANDSHAKES: usize = 256;

/// Finished handshakes axum has not taken yet.
const READY_BACKLOG: usize = 64;

/// Accepts TCP connections and hands axum the ones whose TLS handshake completed. Dropping it
/// (axum does at shutdown) stops accepting.
#[derive(Debug)]
pub(super) struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, tls: Tls) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_BACKLOG);
        let acceptor = tokio::spawn(accept_loop(tcp, tls, tx));
        Ok(TlsListener {
            local,
            ready,
            acceptor,
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Tls,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "admin API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many TLS handshakes in progress; closing");
            continue;
        };
        let (tls, ready) = (tls.clone(), ready.clone());
        tokio::spawn(async move {
            if let Some(stream) = tls.accept(stream, peer).await {
                let _ = ready.send((stream, peer)).await;
            }
            drop(permit);
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // Only if the accept loop ended, which it does not while this value lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}
