//! Inbound messages in the gateway's words: who sent what, where, and a
//! typed body for every kind WhatsApp carries.

use serde::{Deserialize, Serialize};

use super::Party;

/// A message someone sent to the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub message_id: String,
    pub from: Party,
    /// The chat it arrived in (the sender's JID, or a group's).
    pub chat: String,
    /// A group chat's subject, when the gateway knows it (filled in from
    /// its cache of group metadata, never by the engine).
    pub chat_subject: Option<String>,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub content: Content,
    /// Sent by the instance's own account from its phone or another linked
    /// device; `chat` is then the recipient.
    pub from_me: bool,
}

/// What a message carries. Reactions, edits and deletions name the
/// message they change.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text {
        text: String,
        quoted: Option<Quoted>,
        /// JIDs of the people mentioned.
        mentions: Vec<String>,
    },
    /// Image, video, audio, voice note, document or sticker: its kind is
    /// the media's.
    Media(ReceivedMedia),
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
        /// A live location (its first report).
        live: bool,
    },
    Contacts(Vec<ReceivedContact>),
    Poll {
        question: String,
        options: Vec<String>,
        /// How many options a voter may pick; 0 means any number.
        selectable: u32,
    },
    Reaction {
        target_id: String,
        /// Empty when the reaction was removed.
        emoji: String,
    },
    Edited {
        target_id: String,
        text: String,
    },
    Deleted {
        target_id: String,
    },
    /// A vote on poll `poll_id`, still encrypted with the poll's secret.
    PollVote {
        poll_id: String,
        vote: super::EncryptedVote,
    },
    /// Anything else, named by its protobuf field (e.g. `eventMessage`).
    Unknown {
        type_name: String,
    },
}

impl Content {
    /// The `kind` a webhook receiver switches on.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Media(m) => m.kind.as_str(),
            Self::Location { live: false, .. } => "location",
            Self::Location { live: true, .. } => "live_location",
            Self::Contacts(_) => "contacts",
            Self::Poll { .. } => "poll",
            Self::Reaction { .. } => "reaction",
            Self::Edited { .. } => "edited",
            Self::Deleted { .. } => "deleted",
            Self::PollVote { .. } => "poll_vote",
            Self::Unknown { .. } => "unknown",
        }
    }

    /// Whether it changes another message (a reaction, an edit or a
    /// deletion) rather than being one.
    pub fn changes_another(&self) -> bool {
        matches!(
            self,
            Self::Reaction { .. } | Self::Edited { .. } | Self::Deleted { .. }
        )
    }

    /// The text a person reads in it, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text { text, .. } | Self::Edited { text, .. } => Some(text),
            Self::Media(m) => m.caption.as_deref(),
            _ => None,
        }
    }
}

/// The message a reply quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quoted {
    pub message_id: String,
    /// Who wrote the quoted message (a JID), when WhatsApp says.
    pub participant: Option<String>,
    /// Its text (or kind), cut to 100 characters.
    pub preview: Option<String>,
}

/// A contact card someone shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedContact {
    pub display_name: String,
    pub vcard: String,
}

/// Media attached to an inbound message, as WhatsApp described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedMedia {
    pub kind: ReceivedMediaKind,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub size: Option<u64>,
    pub caption: Option<String>,
    /// Hex SHA-256 of the plaintext file.
    pub sha256: Option<String>,
    pub duration_secs: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// What a download needs; absent when the message did not carry it
    /// (then the media cannot be fetched). Never sent to webhooks: the
    /// media key is a secret.
    #[serde(skip)]
    pub reference: Option<Box<MediaRef>>,
}

/// Where WhatsApp's media host keeps an inbound file and how to open it.
/// The media key decrypts it: store it sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub kind: ReceivedMediaKind,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    /// SHA-256 of the plaintext.
    pub file_sha256: Vec<u8>,
    /// SHA-256 of the encrypted file the host serves.
    pub file_enc_sha256: Vec<u8>,
    /// Plaintext length WhatsApp declared.
    pub file_length: u64,
    /// The message, for asking the sender's phone to upload it again.
    pub message_id: String,
    pub chat: String,
    pub sender: String,
    pub from_me: bool,
}

// The media key stays out of logs.
impl std::fmt::Debug for MediaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRef")
            .field("kind", &self.kind)
            .field("direct_path", &self.direct_path)
            .field("file_length", &self.file_length)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Where a download writes the plaintext, in order, from a blocking thread.
pub trait MediaSink: std::io::Write + Send + 'static {
    /// Forgets everything written so far (a host failed mid-way and the
    /// next attempt starts over).
    fn restart(&mut self) -> std::io::Result<()>;
    /// Flushes what was written to durable storage.
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Why a media download failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    #[error("not connected to WhatsApp")]
    NotConnected,
    /// The host refused the reference (403/404/410), also after asking the
    /// sender's phone to upload it again.
    #[error("the media host no longer has it: {0}")]
    Expired(String),
    /// The phone could not upload it again.
    #[error("the sender's phone could not upload it again: {0}")]
    ReuploadFailed(String),
    #[error("the media host could not be reached: {0}")]
    Unreachable(String),
    /// It did not decrypt or verify.
    #[error("the media did not verify: {0}")]
    Corrupt(String),
    #[error("writing the media failed: {0}")]
    Io(String),
    #[error("this engine cannot download media")]
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceivedMediaKind {
    Image,
    Video,
    Audio,
    /// A voice note (push to talk).
    Voice,
    Document,
    Sticker,
}

impl ReceivedMediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }
}
