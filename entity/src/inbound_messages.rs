use sea_orm::entity::prelude::*;

/// A message someone sent to an instance, recorded once: redeliveries of
/// the same `(chat, sender, WhatsApp id)` find this row and record nothing.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub instance_id: Uuid,
    /// The chat's JID as WhatsApp addressed it (a person's or a group's).
    pub chat_jid: String,
    /// The sender's JID as WhatsApp addressed it (a number or a LID).
    pub sender_jid: String,
    pub wa_message_id: String,
    /// The `message.received` event that reported it.
    pub event_id: String,
    /// When the sender sent it.
    pub sent_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// What it said: JSON of the content, sealed when a key is set.
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    /// When this instance sent its read receipt.
    pub read_at: Option<DateTimeUtc>,
    /// `text`, `image`, … as `message.received` says; `unknown` for rows
    /// recorded before kinds were kept.
    pub kind: String,
    /// The sender's number (E.164 digits) and LID, when WhatsApp named them.
    pub sender_phone_number: Option<String>,
    pub sender_lid: Option<String>,
    /// When the sender edited its text.
    pub edited_at: Option<DateTimeUtc>,
    /// When it was deleted for everyone.
    pub deleted_at: Option<DateTimeUtc>,
    /// JSON list of the reactions on it, one per reactor.
    #[sea_orm(column_type = "Text", nullable)]
    pub reactions: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
