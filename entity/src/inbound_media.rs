use sea_orm::entity::prelude::*;

/// The media of one inbound message: what a download needs, its state and,
/// once stored, the file's content hash.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound_media")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub instance_id: Uuid,
    /// The `inbound_messages` row it arrived with.
    pub inbound_message_id: Uuid,
    pub wa_message_id: String,
    pub chat_jid: String,
    pub sender_jid: String,
    /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
    pub kind: String,
    pub mime_type: Option<String>,
    /// As the sender named it; only ever shown, never a path.
    pub file_name: Option<String>,
    /// Bytes, as WhatsApp declared.
    pub size: Option<i64>,
    /// Hex SHA-256 of the plaintext, as WhatsApp declared.
    pub sha256: Option<String>,
    /// The download reference (JSON), sealed when a key is set.
    pub reference: Option<String>,
    /// `pending`, `ready` or `failed`.
    pub status: String,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    /// The stored file's name: hex SHA-256 of its content.
    pub stored_hash: Option<String>,
    pub stored_size: Option<i64>,
    pub attempts: i32,
    pub ready_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
