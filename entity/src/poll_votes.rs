use sea_orm::entity::prelude::*;

/// The latest vote of one voter on a poll an instance sent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "poll_votes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub instance_id: Uuid,
    /// WhatsApp's id of the poll message.
    pub poll_message_id: String,
    /// The voter as WhatsApp addressed them (a number or a LID).
    pub voter_jid: String,
    pub voter_phone_number: Option<String>,
    pub voter_lid: Option<String>,
    /// JSON list of the option names picked; empty when withdrawn.
    #[sea_orm(column_type = "Text")]
    pub options: String,
    pub voted_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
