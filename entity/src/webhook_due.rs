//! The due queue: one row per open delivery (pending or being delivered).

use sea_orm::entity::prelude::*;

/// An open delivery as the dispatcher looks for it. The row exists exactly
/// while its delivery is `pending` or `delivering`; its lease lives here.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_due")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: String,
    pub next_attempt_at: DateTimeUtc,
    /// Set while a dispatcher holds it (the delivery is `delivering`).
    pub locked_until: Option<DateTimeUtc>,
    pub claim_token: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
