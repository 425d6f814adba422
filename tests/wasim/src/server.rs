//! The listening side: accepts TCP connections on loopback and runs each
//! as its own task, so one broken client never stops the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use wacore_libsignal::protocol::KeyPair;

use crate::world::World;

/// What every connection shares.
pub struct Shared {
    pub world: Arc<World>,
    /// The server's static Noise key, certified by `cert_chain`.
    pub noise_key: KeyPair,
    pub cert_chain: Vec<u8>,
    pub media: crate::web::MediaStore,
    /// Inbound media waiting for a re-upload request.
    pub expired: crate::media::Expired,
    pub handshakes: Handshakes,
    addr: SocketAddr,
    iq_seq: AtomicU64,
}

/// Connections between their accept and the end of their login (or
/// registration) handshake, and the most there have been at once: what a
/// client-side bound on concurrent connects looks like from the server.
#[derive(Default)]
pub struct Handshakes {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// One connection's handshake; it ends when this is dropped.
pub struct InHandshake<'a>(&'a Handshakes);

impl Handshakes {
    pub fn begin(&self) -> InHandshake<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        InHandshake(self)
    }

    pub fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    /// Starts a new high-water mark from the handshakes in flight now.
    pub fn reset_most(&self) {
        self.most
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for InHandshake<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub fn new(world: Arc<World>, addr: SocketAddr) -> Self {
        let noise_key = KeyPair::generate(&mut rand::rng());
        let public: [u8; 32] = noise_key
            .public_key
            .public_key_bytes()
            .try_into()
            .unwrap_or([0; 32]);
        Self {
            world,
            cert_chain: crate::cert::chain_for(&public),
            noise_key,
            media: Default::default(),
            expired: Default::default(),
            handshakes: Handshakes::default(),
            addr,
            iq_seq: AtomicU64::new(1),
        }
    }

    /// `host:port` of the simulator (WebSocket and HTTP alike).
    pub fn http_authority(&self) -> String {
        self.addr.to_string()
    }

    /// Ids of server-initiated IQs.
    pub fn next_iq_id(&self) -> String {
        format!("sim-{}", self.iq_seq.fetch_add(1, Ordering::Relaxed))
    }
}

pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    if is_websocket(&tcp).await {
                        if let Err(e) = crate::conn::serve(shared, tcp).await {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                    } else if let Err(e) = crate::web::serve(shared, tcp).await {
                        tracing::debug!(%peer, error = %e, "http connection ended");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether the request waiting on `tcp` asks for a WebSocket upgrade; the
/// bytes stay in the socket for whoever serves it.
async fn is_websocket(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await else {
            return false;
        };
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if head.contains("\r\n\r\n") || n == buf.len() || n == 0 {
            return head.contains("upgrade: websocket");
        }
        // Only part of the head has arrived: wait for more.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
