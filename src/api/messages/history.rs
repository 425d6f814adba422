//! The history routes' vocabulary: message kinds to filter on, opaque
//! cursors, and a chat as the chat list shows it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use uuid::Uuid;

use super::view::{MessageDirection, MessageView};
use crate::api::error::ApiError;
use crate::messaging::chat_list::{ChatCursor, ChatSummary, preview};
use crate::messaging::history::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
    Location,
    LiveLocation,
    /// Contact cards (`contacts` received, `contact` sent).
    Contacts,
    Poll,
    /// Reactions this instance sent (received ones show on their target).
    Reaction,
    Unknown,
}

impl MessageKind {
    /// The kinds stored for it.
    pub fn stored(self) -> Vec<&'static str> {
        match self {
            Self::Text => vec!["text"],
            Self::Image => vec!["image"],
            Self::Video => vec!["video"],
            Self::Audio => vec!["audio"],
            Self::Voice => vec!["voice"],
            Self::Document => vec!["document"],
            Self::Sticker => vec!["sticker"],
            Self::Location => vec!["location"],
            Self::LiveLocation => vec!["live_location"],
            Self::Contacts => vec!["contacts", "contact"],
            Self::Poll => vec!["poll"],
            Self::Reaction => vec!["reaction"],
            Self::Unknown => vec!["unknown"],
        }
    }
}

/// A page of the message history.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// With the deprecated `after`: pass as `after` for the next page.
    pub next_after: Option<Uuid>,
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request("invalid_parameter", "`cursor` is not one this server gave")
}

pub fn message_cursor(row_id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(row_id.as_bytes())
}

pub fn parse_message_cursor(cursor: &str) -> Result<Uuid, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
    Uuid::from_slice(&bytes).map_err(|_| bad_cursor())
}

/// Unpadded base64url of the position's microseconds (8 bytes, big
/// endian) and the chat: any string of that shape is a position, so the
/// document's pattern is the whole rule.
pub fn chat_cursor(c: &ChatCursor) -> String {
    let mut bytes = c.at_micros.to_be_bytes().to_vec();
    bytes.extend_from_slice(c.chat.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn parse_chat_cursor(cursor: &str) -> Result<ChatCursor, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
    let (at, chat) = bytes.split_first_chunk::<8>().ok_or_else(bad_cursor)?;
    Ok(ChatCursor {
        at_micros: i64::from_be_bytes(*at),
        chat: String::from_utf8_lossy(chat).into_owned(),
    })
}

/// A chat's newest message, as the chat list shows it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LastMessage {
    pub message_id: String,
    pub kind: String,
    pub direction: MessageDirection,
    pub timestamp: DateTime<Utc>,
    /// Its text or caption (or a place's name, a poll's question, a card's
    /// name), at most 100 characters.
    pub preview: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatView {
    /// The chat's JID: a person's number JID when WhatsApp named the
    /// number, else their LID, or a group's JID.
    pub chat: String,
    pub last_message: LastMessage,
    /// Received messages this instance has not marked read.
    pub unread_count: u64,
}

impl From<ChatSummary> for ChatView {
    fn from(c: ChatSummary) -> Self {
        let preview = preview(&c.last);
        let direction = match c.last.direction {
            Direction::In => MessageDirection::In,
            Direction::Out => MessageDirection::Out,
        };
        Self {
            chat: c.chat,
            last_message: LastMessage {
                message_id: c.last.message_id,
                kind: c.last.kind,
                direction,
                timestamp: c.last.timestamp,
                preview,
            },
            unread_count: c.unread,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChatPage {
    pub items: Vec<ChatView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_cursor_reads_back_what_it_wrote() {
        let c = ChatCursor {
            at_micros: 1_764_800_000_123_456,
            chat: "6281299990000@s.whatsapp.net".into(),
        };
        let back = parse_chat_cursor(&chat_cursor(&c)).expect("parses");
        assert_eq!((back.at_micros, back.chat), (c.at_micros, c.chat));
    }

    #[test]
    fn every_cursor_of_the_documented_shape_is_a_position() {
        // Shortest (8 bytes), each tail length, a tail's last bits set.
        for cursor in [
            "AAAAAAAAAAA",
            "AAAAAAAAAAA8",
            "AAAAAAAA_-_-Aw",
            "AAAAAAAAAAAA_w",
        ] {
            assert!(parse_chat_cursor(cursor).is_ok(), "{cursor}");
        }
        assert!(parse_message_cursor("AAAAAAAAAAAAAAAAAAAAAw").is_ok());
        // Trailing bits set: not base64 this server writes.
        assert!(parse_message_cursor("AAAAAAAAAAAAAAAAAAAAAB").is_err());
        assert!(parse_chat_cursor("AAAA").is_err());
    }
}
