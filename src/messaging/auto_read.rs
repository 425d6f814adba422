//! `auto_read`: an instance with the setting on sends read receipts for
//! inbound messages once every webhook (and sink) owed their
//! `message.received` took it, so a message nobody processed is never shown
//! as read to its sender.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use entity::inbound_messages::{self, Column, Entity};
use entity::instances::{self, Status};
use entity::webhook_deliveries::{self, Status as DeliveryStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::instances::sessions::Sessions;

/// How often the receipts are looked for.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// Messages looked at per instance and round.
const BATCH: u64 = 200;
/// Older messages are left alone: a delivery that never succeeds must not
/// be looked at forever.
const HORIZON: chrono::Duration = chrono::Duration::days(1);

/// One round over every online instance with `auto_read` on; returns how
/// many messages were marked read.
pub async fn tick(sessions: &Sessions) -> Result<usize, DbErr> {
    let db = sessions.db();
    let ids: Vec<Uuid> = instances::Entity::find()
        .filter(instances::Column::AutoRead.eq(true))
        .filter(instances::Column::Status.eq(Status::Online))
        .all(db)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut marked = 0;
    for id in ids {
        let Some(session) = sessions.session(id) else {
            continue;
        };
        let unread = Entity::find()
            .filter(Column::InstanceId.eq(id))
            .filter(Column::ReadAt.is_null())
            // Reactions, edits, deletions and votes are not read.
            .filter(Column::Body.is_not_null())
            .filter(Column::CreatedAt.gt(Utc::now() - HORIZON))
            .order_by_asc(Column::Id)
            .limit(BATCH)
            .all(db)
            .await?;
        let mut ready: BTreeMap<String, Vec<inbound_messages::Model>> = BTreeMap::new();
        for m in unread {
            let statuses: Vec<DeliveryStatus> = webhook_deliveries::Entity::find()
                .filter(webhook_deliveries::Column::EventId.eq(m.event_id.as_str()))
                .all(db)
                .await?
                .into_iter()
                .map(|d| d.status)
                .collect();
            if statuses.iter().all(|s| *s == DeliveryStatus::Succeeded) {
                ready.entry(m.chat_jid.clone()).or_default().push(m);
            }
        }
        for (chat, messages) in ready {
            let wa_ids: Vec<String> = messages.iter().map(|m| m.wa_message_id.clone()).collect();
            if let Err(e) = session.mark_read(&chat, &wa_ids).await {
                tracing::warn!(instance_id = %id, error = %e, "auto_read: receipts not sent");
                continue;
            }
            mark(db, messages.iter().map(|m| m.id).collect()).await?;
            marked += wa_ids.len();
        }
    }
    Ok(marked)
}

/// Notes the rows as read now.
pub async fn mark(db: &sea_orm::DatabaseConnection, rows: Vec<Uuid>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(Column::ReadAt, Expr::value(Utc::now()))
        .filter(Column::Id.is_in(rows))
        .exec(db)
        .await?;
    Ok(())
}
