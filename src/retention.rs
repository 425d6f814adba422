//! Deleting what is past its keeping time: webhook events (with their
//! deliveries and attempts; those with a dead delivery are kept longer),
//! sent and received message rows, inbound media (files and rows) and
//! expired idempotency keys. Run by the `retention` job.

use chrono::Utc;
use entity::{idempotency_keys, inbound_messages, messages, poll_votes};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use crate::state::AppState;

/// Returns how many rows were deleted.
pub async fn purge(state: &AppState) -> Result<u64, DbErr> {
    let settings = &state.settings;
    let mut deleted = 0;
    let days = settings.message_retention_days().min(36_500);
    if days > 0 {
        let before = Utc::now() - chrono::Duration::days(days as i64);
        deleted += messages::Entity::delete_many()
            .filter(messages::Column::CreatedAt.lt(before))
            .exec(&state.db)
            .await?
            .rows_affected;
        deleted += inbound_messages::Entity::delete_many()
            .filter(inbound_messages::Column::CreatedAt.lt(before))
            .exec(&state.db)
            .await?
            .rows_affected;
        deleted += poll_votes::Entity::delete_many()
            .filter(poll_votes::Column::VotedAt.lt(before))
            .exec(&state.db)
            .await?
            .rows_affected;
    }
    let hooks = &settings.webhooks;
    if hooks.event_retention_days > 0 {
        let days = |d: u64| chrono::Duration::days(d.min(36_500) as i64);
        let cutoff = Utc::now() - days(hooks.event_retention_days);
        let dead_cutoff =
            Utc::now() - days(hooks.dead_retention_days.max(hooks.event_retention_days));
        deleted += crate::webhooks::ops::purge_events(&state.db, cutoff, dead_cutoff).await?;
    }
    if let Some(media) = state.sessions.media() {
        deleted += media.purge().await?;
        // Downloads a passing failure postponed are tried again.
        media.resume_all().await?;
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
