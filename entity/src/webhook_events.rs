use sea_orm::entity::prelude::*;

/// The outbox: one row per event, written in the same transaction as the
/// state change it reports.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// `msg_` + a time-ordered id; the `webhook-id` of every delivery.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub instance_id: Uuid,
    /// Commit-ordered, gapless per instance, from 1: the catch-up cursor
    /// and the order of an `ordered` webhook. 0 until sequenced.
    pub position: i64,
    /// Commit-ordered and gapless across all instances, from 1: the cursor
    /// of the all-instances stream. 0 until sequenced.
    pub sequence: i64,
    /// Event type, e.g. `instance.connected`.
    #[sea_orm(column_name = "type")]
    pub event_type: String,
    pub data: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
