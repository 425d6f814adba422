//! What a message said, kept with it (sealed when a key is set) so that a
//! reply can quote it, and the context a send carries: the quoted message
//! and the people mentioned.

use serde::{Deserialize, Serialize};

use super::{ContactCard, Content, OutgoingMessage};

/// A message's content as stored: what a quote shows of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Text {
        text: String,
    },
    /// Image, video, audio, voice note, document or sticker (`kind`).
    Media {
        kind: String,
        #[serde(default)]
        caption: Option<String>,
        #[serde(default)]
        mime_type: Option<String>,
        #[serde(default)]
        file_name: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        address: Option<String>,
    },
    Contacts {
        contacts: Vec<StoredContact>,
    },
    Poll {
        question: String,
        options: Vec<String>,
        selectable: u32,
        /// Base64 of the poll's message secret, which votes are encrypted
        /// with (only for polls this instance sent).
        #[serde(default)]
        secret: Option<String>,
    },
}

/// A contact card as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredContact {
    pub display_name: String,
    pub vcard: String,
}

impl Body {
    /// The body of a received message; reactions, edits, deletions and
    /// unknown kinds change or say nothing quotable.
    pub fn of_inbound(content: &Content) -> Option<Self> {
        Some(match content {
            Content::Text { text, .. } => Self::Text { text: text.clone() },
            Content::Media(m) => Self::Media {
                kind: m.kind.as_str().to_owned(),
                caption: m.caption.clone(),
                mime_type: m.mime_type.clone(),
                file_name: m.file_name.clone(),
            },
            Content::Location {
                latitude,
                longitude,
                name,
                address,
                ..
            } => Self::Location {
                latitude: *latitude,
                longitude: *longitude,
                name: name.clone(),
                address: address.clone(),
            },
            Content::Contacts(cards) => Self::Contacts {
                contacts: cards
                    .iter()
                    .map(|c| StoredContact {
                        display_name: c.display_name.clone(),
                        vcard: c.vcard.clone(),
                    })
                    .collect(),
            },
            Content::Poll {
                question,
                options,
                selectable,
            } => Self::Poll {
                question: question.clone(),
                options: options.clone(),
                selectable: *selectable,
                secret: None,
            },
            Content::Reaction { .. }
            | Content::Edited { .. }
            | Content::Deleted { .. }
            | Content::PollVote { .. }
            | Content::Unknown { .. } => return None,
        })
    }

    /// The body of a location, contact card(s) or poll this instance sent;
    /// reactions are not quotable.
    pub fn of_outgoing(message: &OutgoingMessage) -> Option<Self> {
        use base64::Engine as _;
        Some(match message {
            OutgoingMessage::Reaction { .. } => return None,
            OutgoingMessage::Location {
                latitude,
                longitude,
                name,
                address,
            } => Self::Location {
                latitude: *latitude,
                longitude: *longitude,
                name: name.clone(),
                address: address.clone(),
            },
            OutgoingMessage::Contacts(cards) => Self::Contacts {
                contacts: cards.iter().map(StoredContact::from).collect(),
            },
            OutgoingMessage::Poll {
                question,
                options,
                selectable,
                secret,
            } => Self::Poll {
                question: question.clone(),
                options: options.clone(),
                selectable: *selectable,
                secret: Some(base64::engine::general_purpose::STANDARD.encode(secret)),
            },
        })
    }

    /// The poll's message secret, when this is a poll this instance sent.
    pub fn poll_secret(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        match self {
            Self::Poll {
                secret: Some(s), ..
            } => base64::engine::general_purpose::STANDARD.decode(s).ok(),
            _ => None,
        }
    }
}

impl From<&ContactCard> for StoredContact {
    fn from(c: &ContactCard) -> Self {
        Self {
            display_name: c.display_name.clone(),
            vcard: c.vcard.clone(),
        }
    }
}

/// The message a reply quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub message_id: String,
    /// Who wrote it: this instance's JID, or the contact's.
    pub sender_jid: String,
    /// What it said, when the gateway kept it.
    pub body: Option<Body>,
}

/// What a send carries besides its content: the message it replies to,
/// the people it mentions, and the id to send it under.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub quote: Option<Quote>,
    /// JIDs of the people mentioned.
    pub mentions: Vec<String>,
    /// WhatsApp message id to use instead of a fresh one (a send with an
    /// Idempotency-Key goes out under the same id every time).
    pub message_id: Option<String>,
}

impl Context {
    /// Whether the message itself carries nothing of this (the id travels
    /// beside it, not in it).
    pub fn is_empty(&self) -> bool {
        self.quote.is_none() && self.mentions.is_empty()
    }
}

/// An encrypted poll vote as WhatsApp carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedVote {
    pub payload: Vec<u8>,
    pub iv: Vec<u8>,
}
