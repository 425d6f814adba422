use sea_orm::entity::prelude::*;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    /// Waiting for an attempt at `next_attempt_at` (the first, or a retry).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Claimed by a dispatcher until `locked_until`.
    #[sea_orm(string_value = "delivering")]
    Delivering,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Failed in a way retrying cannot fix (a 4xx other than 408/429, 410,
    /// a refused target); replay or recover sends it again.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Out of retries.
    #[sea_orm(string_value = "dead")]
    Dead,
}

/// One event owed to one webhook.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: String,
    pub webhook_id: Uuid,
    pub status: Status,
    /// Attempts made since the delivery was created or last replayed.
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// The lease of the dispatcher holding it; expired leases are reclaimed.
    pub locked_until: Option<DateTimeUtc>,
    pub claim_token: Option<Uuid>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
