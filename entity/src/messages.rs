use sea_orm::entity::prelude::*;

/// A message the gateway sent, tracked through its receipts.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub instance_id: Uuid,
    /// WhatsApp's message id: what receipts name.
    pub wa_message_id: String,
    /// Recipient, E.164 digits.
    pub to_number: String,
    pub to_jid: String,
    /// `text`, `image`, `video`, `audio` or `document`.
    pub kind: String,
    /// `sent`, `server_ack`, `delivered`, `read`, `played` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When its text was last edited.
    pub edited_at: Option<DateTimeUtc>,
    /// When it was deleted (for everyone, or only on our side).
    pub deleted_at: Option<DateTimeUtc>,
    /// What it said: JSON of the content, sealed when a key is set.
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    /// The recipient's LID, when WhatsApp named it.
    pub to_lid: Option<String>,
    /// Where it was sent from: `api`, or `phone` (the owner's phone or
    /// another linked device).
    pub origin: String,
    /// JSON list of the reactions on it, one per reactor.
    #[sea_orm(column_type = "Text", nullable)]
    pub reactions: Option<String>,
    /// Sent to a group: JSON list of each other participant's receipt
    /// (`jid`, `phone_number`, `lid`, `status`, `at`).
    #[sea_orm(column_type = "Text", nullable)]
    pub receipts: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
