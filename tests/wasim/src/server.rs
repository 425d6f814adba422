//! The listening side: accepts TCP connections on loopback and runs each
//! as its own task, so one broken client never stops the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;
use wacore_libsignal::protocol::KeyPair;

use crate::world::World;

/// What every connection shares.
pub struct Shared {
    pub world: Arc<World>,
    /// The server's static Noise key, certified by `cert_chain`.
    pub noise_key: KeyPair,
    pub cert_chain: Vec<u8>,
    iq_seq: AtomicU64,
}

impl Shared {
    pub fn new(world: Arc<World>) -> Self {
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
            iq_seq: AtomicU64::new(1),
        }
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
                    if let Err(e) = crate::conn::serve(shared, tcp).await {
                        tracing::debug!(%peer, error = %e, "connection ended");
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
