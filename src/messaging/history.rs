//! Reading messages back, both directions in one shape: what the instance
//! sent (the `messages` table) and what it received (`inbound_messages`),
//! with what later changed them.

use chrono::{DateTime, Utc};
use entity::{inbound_messages, messages};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::bodies;
use super::changes::{Reaction, reactions_of};
use crate::engine::{Body, Party};
use crate::sealing::Keyring;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from someone.
    In,
    /// Sent by the instance (through the API, or from the owner's phone).
    Out,
}

/// A message of a conversation as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The row's id: time-ordered across both tables.
    pub row_id: Uuid,
    pub instance_id: Uuid,
    pub message_id: String,
    pub direction: Direction,
    /// `api` or `phone`, for sent messages.
    pub origin: Option<String>,
    /// The chat's JID.
    pub chat: String,
    pub kind: String,
    /// Sent messages' progress.
    pub status: Option<String>,
    pub error: Option<String>,
    /// The recipient's number (E.164 digits) of a sent message.
    pub to: Option<String>,
    /// The other person: the recipient of a sent message, the sender of a
    /// received one.
    pub peer: Party,
    /// What it says, when kept and it opens.
    pub body: Option<Body>,
    /// When it was sent (by the sender's clock, for received messages).
    pub timestamp: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// When this instance read a received message.
    pub read_at: Option<DateTime<Utc>>,
    pub reactions: Vec<Reaction>,
    /// Sent to a group: each other participant's receipt.
    pub receipts: Vec<super::group_receipts::ParticipantReceipt>,
}

impl Stored {
    pub fn of_sent(keyring: &Keyring, m: messages::Model) -> Self {
        let body = bodies::open(keyring, bodies::SENT, m.id, m.body.as_deref());
        let phone_number = Some(m.to_number.clone()).filter(|n| !n.is_empty());
        Self {
            row_id: m.id,
            instance_id: m.instance_id,
            message_id: m.wa_message_id,
            direction: Direction::Out,
            origin: Some(m.origin),
            chat: m.to_jid.clone(),
            kind: m.kind,
            status: Some(m.status),
            error: m.error,
            to: Some(m.to_number),
            peer: Party {
                jid: m.to_jid,
                phone_number,
                lid: m.to_lid,
            },
            body,
            timestamp: m.created_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            read_at: None,
            reactions: reactions_of(m.reactions.as_deref()),
            receipts: super::group_receipts::list_of(m.receipts.as_deref()),
        }
    }

    pub fn of_received(keyring: &Keyring, m: inbound_messages::Model) -> Self {
        let body = bodies::open(keyring, bodies::RECEIVED, m.id, m.body.as_deref());
        let updated_at = [m.read_at, m.edited_at, m.deleted_at]
            .into_iter()
            .flatten()
            .fold(m.created_at, DateTime::max);
        Self {
            row_id: m.id,
            instance_id: m.instance_id,
            message_id: m.wa_message_id,
            direction: Direction::In,
            origin: None,
            chat: m.chat_jid,
            kind: m.kind,
            status: None,
            error: None,
            to: None,
            peer: Party {
                jid: m.sender_jid,
                phone_number: m.sender_phone_number,
                lid: m.sender_lid,
            },
            body,
            timestamp: m.sent_at,
            created_at: m.created_at,
            updated_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            read_at: m.read_at,
            reactions: reactions_of(m.reactions.as_deref()),
            receipts: Vec::new(),
        }
    }

    /// The text a person reads in it: a text's, or a caption.
    pub fn text(&self) -> Option<&str> {
        match self.body.as_ref()? {
            Body::Text { text } => Some(text),
            Body::Media { caption, .. } => caption.as_deref(),
            _ => None,
        }
    }
}

/// Message `message_id` of the instance, sent or received. Reactions,
/// edits and deletions someone sent are not messages of their own (they
/// show on their target).
pub async fn get(
    db: &DatabaseConnection,
    keyring: &Keyring,
    instance_id: Uuid,
    message_id: &str,
) -> Result<Option<Stored>, DbErr> {
    if let Some(sent) = get_sent(db, instance_id, message_id).await? {
        return Ok(Some(Stored::of_sent(keyring, sent)));
    }
    use inbound_messages::Column as C;
    Ok(inbound_messages::Entity::find()
        .filter(C::InstanceId.eq(instance_id))
        .filter(C::WaMessageId.eq(message_id))
        .filter(C::Kind.is_not_in(CHANGES))
        .one(db)
        .await?
        .map(|m| Stored::of_received(keyring, m)))
}

/// Kinds of received rows that change another message.
pub const CHANGES: [&str; 4] = ["reaction", "edited", "deleted", "poll_vote"];

/// The sent message `message_id`.
pub async fn get_sent(
    db: &DatabaseConnection,
    instance_id: Uuid,
    message_id: &str,
) -> Result<Option<messages::Model>, DbErr> {
    messages::Entity::find()
        .filter(messages::Column::InstanceId.eq(instance_id))
        .filter(messages::Column::WaMessageId.eq(message_id))
        .one(db)
        .await
}

/// Sent messages oldest first, after the row `after` (a previous page's
/// cursor); one row past the page tells whether another page exists.
pub async fn list(
    db: &DatabaseConnection,
    instance_id: Uuid,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<messages::Model>, Option<Uuid>), DbErr> {
    use messages::{Column, Entity};
    let mut query = Entity::find()
        .filter(Column::InstanceId.eq(instance_id))
        .order_by_asc(Column::Id);
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    let mut rows = query.limit(limit + 1).all(db).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|m| m.id)
    } else {
        None
    };
    Ok((rows, next))
}
