//! Deleting what is past its keeping time: sent-message rows and expired
//! idempotency keys. (Webhook events have their own retention in the
//! dispatcher.)

use chrono::Utc;
use entity::{idempotency_keys, messages};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use crate::app::AppState;

/// Returns how many rows were deleted.
pub async fn purge(state: &AppState) -> Result<u64, DbErr> {
    let settings = &state.settings;
    let mut deleted = 0;
    let days = settings.scheduler.message_retention_days;
    if days > 0 {
        let before = Utc::now() - chrono::Duration::days(days as i64);
        deleted += messages::Entity::delete_many()
            .filter(messages::Column::CreatedAt.lt(before))
            .exec(&state.db)
            .await?
            .rows_affected;
    }
    let ttl = settings.messaging.idempotency_ttl_secs;
    let before = Utc::now() - chrono::Duration::seconds(ttl as i64);
    deleted += idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::CreatedAt.lt(before))
        .exec(&state.db)
        .await?
        .rows_affected;
    Ok(deleted)
}
