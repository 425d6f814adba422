//! A stored message as the API shows it, sent or received, and the people
//! it names (each with `jid`, `phone_number` and `lid`).

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use uuid::Uuid;

use super::body_view::{BodyViews, ContactCardView, LocationView, MediaView, PollView};
use crate::engine::Party;
use crate::messaging::changes::Reaction;
use crate::messaging::group_receipts::ParticipantReceipt;
use crate::messaging::history::{Direction, Stored};

/// A person as WhatsApp named them; `phone_number` and `lid` are absent
/// only while WhatsApp has not told the gateway.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, rename = "Person")]
pub struct PartyView {
    /// The address WhatsApp used: `…@s.whatsapp.net` or `…@lid`.
    pub jid: String,
    /// E.164 digits.
    pub phone_number: Option<String>,
    /// `…@lid`.
    pub lid: Option<String>,
}

impl From<Party> for PartyView {
    fn from(p: Party) -> Self {
        Self {
            jid: p.jid,
            phone_number: p.phone_number,
            lid: p.lid,
        }
    }
}

/// How far a group message got with one participant.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "GroupReceipt")]
pub struct GroupReceiptView {
    pub participant: PartyView,
    pub status: GroupReceiptStatus,
    /// When it last moved; absent while `sent`.
    pub at: Option<DateTime<Utc>>,
}

/// A participant's progress: nothing reported yet (`sent`), then
/// `delivered`, `read`, `played`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "GroupReceiptStatus", rename_all = "snake_case")]
pub enum GroupReceiptStatus {
    Sent,
    Delivered,
    Read,
    Played,
}

impl From<ParticipantReceipt> for GroupReceiptView {
    fn from(r: ParticipantReceipt) -> Self {
        let status = match r.status.as_str() {
            "delivered" => GroupReceiptStatus::Delivered,
            "read" => GroupReceiptStatus::Read,
            "played" => GroupReceiptStatus::Played,
            _ => GroupReceiptStatus::Sent,
        };
        Self {
            participant: r.person().into(),
            status,
            at: r.at,
        }
    }
}

/// One person's reaction on a message.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "MessageReaction")]
pub struct ReactionView {
    pub from: PartyView,
    pub emoji: String,
    /// When they reacted.
    pub at: DateTime<Utc>,
}

impl From<Reaction> for ReactionView {
    fn from(r: Reaction) -> Self {
        Self {
            from: PartyView {
                jid: r.jid,
                phone_number: r.phone_number,
                lid: r.lid,
            },
            emoji: r.emoji,
            at: r.at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MessageDirection {
    /// Received from someone.
    In,
    /// Sent by the instance.
    Out,
}

impl From<MessageDirection> for Direction {
    fn from(d: MessageDirection) -> Self {
        match d {
            MessageDirection::In => Self::In,
            MessageDirection::Out => Self::Out,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MessageOrigin {
    /// Through this API.
    Api,
    /// From the owner's phone or another linked device.
    Phone,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Message")]
pub struct MessageView {
    pub message_id: String,
    pub instance_id: Uuid,
    pub direction: MessageDirection,
    /// Where a sent message was sent from; absent on received ones.
    pub origin: Option<MessageOrigin>,
    /// The chat's JID (a person's or a group's).
    pub chat: String,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `live_location`, `contacts` (`contact` on sent ones),
    /// `poll`, `reaction` or `unknown`.
    pub kind: String,
    /// A sent message's progress: `sent`, `server_ack`, `delivered`,
    /// `read`, `played` or `failed`; absent on received ones.
    pub status: Option<String>,
    pub error: Option<String>,
    /// A sent message's recipient, E.164 digits.
    pub to: Option<String>,
    /// A sent message's recipient JID.
    pub to_jid: Option<String>,
    /// Who a sent message went to.
    pub recipient: Option<PartyView>,
    /// Who sent a received message.
    pub sender: Option<PartyView>,
    /// Its text or caption (the latest edit), when the gateway kept it.
    pub text: Option<String>,
    /// A `location` or `live_location` message's place.
    pub location: Option<LocationView>,
    /// A `contacts` (or `contact`) message's cards.
    pub contacts: Option<Vec<ContactCardView>>,
    /// A `poll` message's question and options.
    pub poll: Option<PollView>,
    /// A media message's file.
    pub media: Option<MediaView>,
    /// When it was sent (by the sender's clock, for received messages).
    pub timestamp: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// When this instance marked a received message read.
    pub read_at: Option<DateTime<Utc>>,
    /// One per person who reacted.
    pub reactions: Vec<ReactionView>,
    /// A message sent to a group: one per other participant, with how far
    /// it got with them (its `status` is the least advanced of these).
    pub receipts: Vec<GroupReceiptView>,
}

impl From<Stored> for MessageView {
    fn from(mut m: Stored) -> Self {
        let text = m.text().map(str::to_owned);
        let served = m.direction == Direction::In || m.origin.as_deref() == Some("phone");
        let body = BodyViews::of(m.body.take(), m.instance_id, &m.message_id, served);
        let (direction, recipient, sender, to_jid) = match m.direction {
            Direction::Out => (
                MessageDirection::Out,
                Some(m.peer.clone().into()),
                None,
                Some(m.peer.jid),
            ),
            Direction::In => (MessageDirection::In, None, Some(m.peer.into()), None),
        };
        Self {
            message_id: m.message_id,
            instance_id: m.instance_id,
            direction,
            origin: m.origin.map(|o| match o.as_str() {
                "phone" => MessageOrigin::Phone,
                _ => MessageOrigin::Api,
            }),
            chat: m.chat,
            kind: m.kind,
            status: m.status,
            error: m.error,
            to: m.to,
            to_jid,
            recipient,
            sender,
            text,
            location: body.location,
            contacts: body.contacts,
            poll: body.poll,
            media: body.media,
            timestamp: m.timestamp,
            created_at: m.created_at,
            updated_at: m.updated_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            read_at: m.read_at,
            reactions: m.reactions.into_iter().map(Into::into).collect(),
            receipts: m.receipts.into_iter().map(Into::into).collect(),
        }
    }
}
