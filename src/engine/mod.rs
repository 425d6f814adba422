//! The seam between the gateway and WhatsApp. The rest of the gateway talks
//! to these traits only: `crate::whatsapp` implements them with
//! whatsapp-rust, and [`scripted`] with a double that tests drive.

pub mod scripted;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("not connected to WhatsApp")]
    NotConnected,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("WhatsApp refused: {0}")]
    Refused(String),
    #[error("session store: {0}")]
    Store(String),
    #[error("{0}")]
    Other(String),
}

/// What WhatsApp told a session, in the gateway's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// A QR code to show; `attempt` counts from 1 within one pairing.
    Qr {
        code: String,
        valid_for: Duration,
        attempt: u32,
    },
    /// Every QR code expired without a scan; pairing stopped.
    QrExhausted,
    /// A phone linked this device. Numbers are E.164 digits.
    Paired {
        jid: String,
        lid: Option<String>,
        phone_number: Option<String>,
    },
    PairError {
        reason: String,
    },
    /// Logged in and ready.
    Connected {
        jid: Option<String>,
        phone_number: Option<String>,
    },
    /// The connection dropped (or never came up); the client retries.
    Disconnected {
        reason: String,
    },
    /// The device was unlinked (from the phone, the API or the server).
    LoggedOut {
        reason: String,
    },
    /// Another client took over this session.
    StreamReplaced,
    TemporaryBan {
        reason: String,
        expires_in: Duration,
    },
    ConnectFailure {
        reason: String,
    },
}

/// Where a session delivers its events, tagged with the instance.
pub type EventSink = mpsc::Sender<(Uuid, EngineEvent)>;

/// One live WhatsApp client.
#[async_trait::async_trait]
pub trait Session: Send + Sync {
    /// Asks for an 8-character linking code for `phone_number` (E.164 digits).
    async fn pair_code(&self, phone_number: &str) -> Result<String, EngineError>;

    /// Unlinks the device from the phone and stops the client. Best effort
    /// when offline; the gateway wipes the keys either way.
    async fn logout(&self);

    /// Stops the client without unlinking, so it can resume later.
    async fn disconnect(&self);
}

/// Starts sessions. One per process.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// Starts a client for `instance_id` from its stored session, or a fresh
    /// pairing when there is none. Its events go to `sink`.
    async fn start(
        &self,
        instance_id: Uuid,
        sink: EventSink,
    ) -> Result<Arc<dyn Session>, EngineError>;

    /// Deletes the instance's stored keys (after a logout).
    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError>;
}
