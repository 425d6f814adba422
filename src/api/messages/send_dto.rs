//! The bodies and the answer of the send routes.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Multipart, Object};
use uuid::Uuid;

use super::upload::SpooledFile;
use crate::api::text::{Text, Uri};
use crate::engine::MediaKind;
use crate::messaging::send::Sent;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendText {
    /// Recipient's number: international (`+62…`, `0062…`) or national with
    /// the configured default region; spaces, dashes, dots and parentheses
    /// are ignored. Or a group's JID (`…@g.us`) the instance is in.
    #[oai(validator(
        max_length = 64,
        pattern = r"^(\+?[0-9][0-9 ().-]{6,30}|[0-9]{1,24}(-[0-9]{1,24})?@g\.us)$"
    ))]
    pub to: Text,
    #[oai(validator(min_length = 1, max_length = 65536))]
    pub text: Text,
    /// WhatsApp id of a message this instance sent or received, to quote:
    /// the recipient sees the quote with the original's sender and
    /// content. Unknown ids are 422 `reply_target_unknown`.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub reply_to: Option<Text>,
    /// Numbers of people to mention (each on WhatsApp); an `@number` the
    /// text lacks is appended to it.
    #[oai(validator(
        max_items = 50,
        max_length = 32,
        pattern = r"^\+?[0-9][0-9 ().-]{6,30}$"
    ))]
    pub mentions: Option<Vec<Text>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Kind {
    Image,
    Video,
    Audio,
    /// Audio sent as a voice note.
    Voice,
    Document,
}

impl Kind {
    /// The media kind a request declared, if any, and whether it asked for
    /// a voice note.
    pub(super) fn declared(kind: Option<Kind>) -> (Option<MediaKind>, bool) {
        match kind {
            None => (None, false),
            Some(Kind::Image) => (Some(MediaKind::Image), false),
            Some(Kind::Video) => (Some(MediaKind::Video), false),
            Some(Kind::Audio) => (Some(MediaKind::Audio), false),
            Some(Kind::Voice) => (Some(MediaKind::Audio), true),
            Some(Kind::Document) => (Some(MediaKind::Document), false),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendUrl {
    /// Recipient's number, or a group's JID (`…@g.us`).
    #[oai(validator(
        max_length = 64,
        pattern = r"^(\+?[0-9][0-9 ().-]{6,30}|[0-9]{1,24}(-[0-9]{1,24})?@g\.us)$"
    ))]
    pub to: Text,
    /// An http(s) URL the gateway fetches the file from.
    pub url: Uri,
    pub caption: Option<Text>,
    /// File name shown for documents; taken from the URL when absent.
    #[oai(validator(max_length = 255))]
    pub file_name: Option<Text>,
    /// Declared kind; sniffed from the bytes when absent.
    pub kind: Option<Kind>,
    /// WhatsApp id of a message this instance sent or received, to quote.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub reply_to: Option<Text>,
    /// Numbers of people the caption mentions (not for audio).
    #[oai(validator(
        max_items = 50,
        max_length = 32,
        pattern = r"^\+?[0-9][0-9 ().-]{6,30}$"
    ))]
    pub mentions: Option<Vec<Text>>,
}

/// A file to send, as a multipart form.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct SendFile {
    /// Recipient's number, or a group's JID (`…@g.us`).
    #[oai(validator(
        max_length = 64,
        pattern = r"^(\+?[0-9][0-9 ().-]{6,30}|[0-9]{1,24}(-[0-9]{1,24})?@g\.us)$"
    ))]
    pub to: String,
    pub file: SpooledFile,
    pub caption: Option<String>,
    /// Declared kind; sniffed from the bytes when absent.
    pub kind: Option<Kind>,
    /// WhatsApp id of a message this instance sent or received, to quote.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub reply_to: Option<String>,
    /// Numbers of people the caption mentions; repeat the field for each.
    #[oai(validator(
        max_items = 50,
        max_length = 32,
        pattern = r"^\+?[0-9][0-9 ().-]{6,30}$"
    ))]
    pub mentions: Vec<String>,
}

/// The answer to an accepted send.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SendResult {
    /// WhatsApp's id of the message; receipts and webhooks name it.
    pub message_id: String,
    pub instance_id: Uuid,
    /// Recipient, E.164 digits.
    pub to: String,
    /// The JID WhatsApp delivers to (it may differ from `to`).
    pub to_jid: String,
    /// `sent`.
    pub status: String,
    pub timestamp: DateTime<Utc>,
}

impl From<Sent> for SendResult {
    fn from(s: Sent) -> Self {
        Self {
            message_id: s.message_id,
            instance_id: s.instance_id,
            to: s.to,
            to_jid: s.to_jid,
            status: s.status,
            timestamp: s.timestamp,
        }
    }
}
