//! A TCP proxy between one client and the broker that the test can break: cut (both sockets
//! reset, no AMQP close — a crashed client or a pulled cable), cut after N bytes upstream (the
//! client vanishes mid-frame), or stall (stop reading what the broker sends — a client that no
//! longer reads its socket).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// See the module docs. Serves one connection.
pub struct Proxy {
    pub addr: SocketAddr,
    stalled: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listen on a free port; the first connection is forwarded to `target`. With
    /// `cut_after`, the connection is reset once that many client bytes were forwarded.
    pub async fn start(target: SocketAddr, cut_after: Option<usize>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new(AtomicBool::new(false));
        let upstream = Arc::new(AtomicUsize::new(0));
        let (s, u) = (stalled.clone(), upstream);
        let task = tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(target).await.unwrap();
            // Reset, not FIN, when dropped: the broker sees what a crash looks like.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let mut n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let done = u.load(Ordering::SeqCst);
                    if let Some(limit) = cut_after {
                        n = n.min(limit.saturating_sub(done));
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    u.fetch_add(n, Ordering::SeqCst);
                    if cut_after.is_some_and(|l| done + n >= l) {
                        return; // the caller's select ends the connection: both reset
                    }
                }
            };
            let down = async {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    if s.load(Ordering::SeqCst) {
                        // Stalled: read nothing more, ever.
                        std::future::pending::<()>().await;
                    }
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
        Proxy {
            addr,
            stalled,
            task,
        }
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Stop reading from the broker (what it sends piles up in the kernel's buffers).
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Reset both connections now.
    pub fn cut(self) {
        self.task.abort();
    }

    /// Whether the connection has ended (cut after N bytes, or closed by either side).
    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }
}
