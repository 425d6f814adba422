//! The seam between the gateway and WhatsApp. The rest of the gateway talks
//! to these traits only: `crate::whatsapp` implements them with
//! whatsapp-rust, and [`scripted`] with a double that tests drive.

mod body;
pub mod groups;
mod inbound;
pub mod scripted;

pub use body::{Body, Context, EncryptedVote, Quote, StoredContact};
pub use inbound::{
    Content, Inbound, MediaError, MediaRef, MediaSink, Quoted, ReceivedContact, ReceivedMedia,
    ReceivedMediaKind,
};

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
#[derive(Debug, Clone, PartialEq)]
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
    /// The server accepted (or, with `error`, refused) a sent message.
    ServerAck {
        message_id: String,
        error: Option<String>,
    },
    /// The recipient's phone reported progress on sent messages.
    Receipt {
        message_ids: Vec<String>,
        kind: ReceiptKind,
        from: Party,
    },
    Message(Box<Inbound>),
    /// Messages the client holds unacknowledged until the gateway has
    /// committed them: it redelivers them after a crash. `committed` must be
    /// told the outcome.
    Messages {
        messages: Vec<Inbound>,
        committed: Ack,
    },
    /// Someone is calling the instance.
    Call(IncomingCall),
    /// Something happened in a group the instance is (or was) in.
    Group(groups::GroupEvent),
}

/// A call offered to the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call_id: String,
    /// The caller.
    pub from: Party,
    /// The JID the call was offered from (a device of the caller); a
    /// rejection goes back to it.
    pub from_device: String,
    /// Who started the call, as WhatsApp names it in a rejection.
    pub creator_jid: String,
    pub video: bool,
    pub offered_at: chrono::DateTime<chrono::Utc>,
}

/// Tells a waiting engine whether the gateway committed what it was
/// handed. Dropped untold, it reports failure.
#[derive(Clone)]
pub struct Ack(Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<bool>>>>);

impl Ack {
    /// An ack and the receiver its outcome arrives on.
    pub fn new() -> (Self, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self(Arc::new(std::sync::Mutex::new(Some(tx)))), rx)
    }

    /// Reports the outcome; only the first report counts.
    pub fn done(&self, committed: bool) {
        let sender = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(committed);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// Two acks are equal when they answer the same wait.
impl PartialEq for Ack {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Ack {}

/// A message's progress as the recipient's receipts report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered,
    Read,
    Played,
}

/// A person as WhatsApp addressed them: by phone number, by LID, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    pub jid: String,
    /// E.164 digits, when known (from the JID or the LID mapping).
    pub phone_number: Option<String>,
    pub lid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
        }
    }
}

/// The content of media to send: in memory (fetched from a URL) or in a
/// spooled file (an upload), which only the engine reads.
#[derive(Debug)]
pub enum MediaBody {
    Bytes(Vec<u8>),
    File { file: std::fs::File, len: u64 },
}

impl MediaBody {
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Media to send.
#[derive(Debug)]
pub struct OutgoingMedia {
    pub kind: MediaKind,
    pub body: MediaBody,
    pub mime_type: String,
    pub file_name: Option<String>,
    pub caption: Option<String>,
    /// Audio as a voice note (push to talk).
    pub voice: bool,
    /// The message the caption replies to and who it mentions.
    pub context: Context,
}

/// A message other than text or media: what the conversation routes send.
#[derive(Debug, Clone, PartialEq)]
pub enum OutgoingMessage {
    /// `emoji` on message `target_id` of the chat; empty removes it.
    /// `from_me`: whether this instance sent the target.
    Reaction {
        target_id: String,
        from_me: bool,
        emoji: String,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// One or more contact cards.
    Contacts(Vec<ContactCard>),
    Poll {
        question: String,
        options: Vec<String>,
        /// How many options a voter may pick (1..=options).
        selectable: u32,
        /// The message secret votes are encrypted with; the send pipeline
        /// draws it, after the idempotency check.
        secret: [u8; 32],
    },
}

impl OutgoingMessage {
    /// The tracked message's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Reaction { .. } => "reaction",
            Self::Location { .. } => "location",
            Self::Contacts(_) => "contact",
            Self::Poll { .. } => "poll",
        }
    }
}

/// What a chat shows of this instance: typing, recording audio, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatPresence {
    Typing,
    Recording,
    Paused,
}

/// A contact card: the name shown and its vCard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactCard {
    pub display_name: String,
    pub vcard: String,
}

/// What WhatsApp's directory says of a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberInfo {
    /// The number asked about, E.164 digits.
    pub phone_number: String,
    pub registered: bool,
    /// The JID to send to; may differ from the number (e.g. Brazil's ninth
    /// digit).
    pub jid: Option<String>,
    pub lid: Option<String>,
}

/// A person asked about by one half of their address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactKey {
    /// E.164 digits.
    Phone(String),
    /// The LID's user part (digits, without `@lid`).
    Lid(String),
}

impl EngineEvent {
    /// Whether the event is about messages rather than the instance.
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            Self::ServerAck { .. }
                | Self::Receipt { .. }
                | Self::Message(_)
                | Self::Messages { .. }
        )
    }
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

    /// Sends text to a JID, quoting and mentioning as `context` says;
    /// returns WhatsApp's message id.
    async fn send_text(
        &self,
        to_jid: &str,
        text: &str,
        context: &Context,
    ) -> Result<String, EngineError>;

    /// Shows "typing…" in the chat with `to_jid`; the next message ends it.
    async fn typing(&self, to_jid: &str) -> Result<(), EngineError>;

    /// Uploads media to WhatsApp and sends it; returns the message id.
    async fn send_media(&self, to_jid: &str, media: OutgoingMedia) -> Result<String, EngineError>;

    /// Sends a reaction, location, contact card(s) or poll; returns the
    /// message id. `context` applies where WhatsApp carries one (not on
    /// reactions).
    async fn send_message(
        &self,
        to_jid: &str,
        message: OutgoingMessage,
        context: &Context,
    ) -> Result<String, EngineError>;

    /// Turns an offered call away.
    async fn reject_call(&self, call: &IncomingCall) -> Result<(), EngineError>;

    /// Replaces the text of text message `message_id` sent to `to_jid`.
    async fn edit_text(
        &self,
        to_jid: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), EngineError>;

    /// Deletes message `message_id` sent to `to_jid` for everyone.
    async fn revoke(&self, to_jid: &str, message_id: &str) -> Result<(), EngineError>;

    /// Sends read receipts for messages `chat_jid` sent.
    async fn mark_read(&self, chat_jid: &str, message_ids: &[String]) -> Result<(), EngineError>;

    /// Shows typing or recording in `chat_jid`, or stops.
    async fn chat_presence(&self, chat_jid: &str, state: ChatPresence) -> Result<(), EngineError>;

    /// Shows the instance as online (available) or not.
    async fn set_presence(&self, available: bool) -> Result<(), EngineError>;

    /// Looks numbers (E.164 digits) up in WhatsApp's directory.
    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberInfo>, EngineError>;

    /// The person `key` names, both halves of their address: from the
    /// session's LID store, else WhatsApp's directory; `None` when neither
    /// knows them.
    async fn lookup_contact(&self, key: &ContactKey) -> Result<Option<Party>, EngineError> {
        let _ = key;
        Err(EngineError::Other(
            "this engine cannot look contacts up".into(),
        ))
    }

    /// Downloads and decrypts inbound media into `sink`, streaming. When
    /// the host no longer has it, asks the sender's phone to upload it
    /// again, once. Returns the direct path it finally came from.
    async fn download_media(
        &self,
        media: &MediaRef,
        sink: Box<dyn MediaSink>,
    ) -> Result<String, MediaError> {
        let _ = (media, sink);
        Err(MediaError::Unsupported)
    }

    /// What the session does with groups; `None` when it cannot.
    fn groups(&self) -> Option<&dyn groups::GroupSession> {
        None
    }
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
