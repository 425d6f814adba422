//! Operations on deliveries: list them and their attempts, replay, recover,
//! send a test event, and read an instance's events by cursor.

use chrono::{DateTime, Utc};
use entity::webhook_deliveries::{self, Status};
use entity::{webhook_attempts, webhook_events};
use sea_orm::QueryTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::Webhooks;
use super::events::{Audience, EventType};
use super::registry::{self, Scope, WebhookError};

pub type Delivery = webhook_deliveries::Model;
pub type Attempt = webhook_attempts::Model;
pub type Event = webhook_events::Model;

/// A delivery and the type of its event.
pub struct DeliveryView {
    pub delivery: Delivery,
    pub event_type: String,
}

pub async fn list_deliveries(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    status: Option<Status>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<DeliveryView>, Option<Uuid>), WebhookError> {
    registry::get(db, scope, webhook_id).await?;
    let mut query = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::WebhookId.eq(webhook_id))
        .order_by_asc(webhook_deliveries::Column::Id);
    if let Some(status) = status {
        query = query.filter(webhook_deliveries::Column::Status.eq(status));
    }
    if let Some(after) = after {
        query = query.filter(webhook_deliveries::Column::Id.gt(after));
    }
    let mut rows = query.limit(limit + 1).all(db).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        rows.last().map(|d| d.id)
    } else {
        None
    };
    let types: std::collections::HashMap<String, String> = webhook_events::Entity::find()
        .filter(webhook_events::Column::Id.is_in(rows.iter().map(|d| d.event_id.clone())))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e.event_type))
        .collect();
    let items = rows
        .into_iter()
        .map(|d| DeliveryView {
            event_type: types.get(&d.event_id).cloned().unwrap_or_default(),
            delivery: d,
        })
        .collect();
    Ok((items, next))
}

async fn delivery(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> Result<Delivery, WebhookError> {
    registry::get(db, scope, webhook_id).await?;
    webhook_deliveries::Entity::find_by_id(delivery_id)
        .filter(webhook_deliveries::Column::WebhookId.eq(webhook_id))
        .one(db)
        .await?
        .ok_or(WebhookError::DeliveryNotFound(delivery_id))
}

pub async fn get_delivery(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> Result<DeliveryView, WebhookError> {
    let d = delivery(db, scope, webhook_id, delivery_id).await?;
    let event_type = webhook_events::Entity::find_by_id(d.event_id.clone())
        .one(db)
        .await?
        .map(|e| e.event_type)
        .unwrap_or_default();
    Ok(DeliveryView {
        delivery: d,
        event_type,
    })
}

pub async fn list_attempts(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> Result<Vec<Attempt>, WebhookError> {
    delivery(db, scope, webhook_id, delivery_id).await?;
    Ok(webhook_attempts::Entity::find()
        .filter(webhook_attempts::Column::DeliveryId.eq(delivery_id))
        .order_by_asc(webhook_attempts::Column::Id)
        .all(db)
        .await?)
}

/// Makes a delivery due now with a fresh retry schedule, whatever its state
/// (a delivery being attempted right now is left alone). Earlier attempts
/// stay in the log.
pub async fn replay(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> Result<DeliveryView, WebhookError> {
    let d = delivery(db, scope, webhook_id, delivery_id).await?;
    reopen(db, Some(d), None).await?;
    get_delivery(db, scope, webhook_id, delivery_id).await
}

/// Replays every failed or dead delivery of a webhook created at or after
/// `since`. Returns how many.
pub async fn recover(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, WebhookError> {
    registry::get(db, scope, webhook_id).await?;
    Ok(reopen(db, None, Some((webhook_id, since))).await?)
}

/// Makes deliveries pending and due now with a fresh schedule: one that is
/// not being attempted (`one`), or a webhook's failed and dead ones created
/// since a time (`closed_since`). Each goes back into the due queue first.
async fn reopen(
    db: &DatabaseConnection,
    one: Option<Delivery>,
    closed_since: Option<(Uuid, DateTime<Utc>)>,
) -> Result<u64, DbErr> {
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let mut reopened = Vec::new();
    if let Some(d) = one {
        // A waiting one is simply due now; a leased one is left alone.
        let queued = entity::webhook_due::Entity::find_by_id(d.id)
            .one(&txn)
            .await?;
        match queued {
            Some(q) if q.claim_token.is_some() => {}
            Some(_) => {
                entity::webhook_due::Entity::update_many()
                    .col_expr(entity::webhook_due::Column::NextAttemptAt, Expr::value(now))
                    .filter(entity::webhook_due::Column::DeliveryId.eq(d.id))
                    .filter(entity::webhook_due::Column::ClaimToken.is_null())
                    .exec(&txn)
                    .await?;
                reopened.push(d.id);
            }
            None if d.status != Status::Delivering => {
                super::due::reopen(&txn, std::slice::from_ref(&d), now).await?;
                reopened.push(d.id);
            }
            None => {}
        }
    }
    if let Some((webhook_id, since)) = closed_since {
        let closed = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::WebhookId.eq(webhook_id))
            .filter(webhook_deliveries::Column::Status.is_in([Status::Failed, Status::Dead]))
            .filter(webhook_deliveries::Column::CreatedAt.gte(since))
            .all(&txn)
            .await?;
        super::due::reopen(&txn, &closed, now).await?;
        reopened.extend(closed.iter().map(|d| d.id));
    }
    let mut n = 0;
    for chunk in reopened.chunks(500) {
        n += webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::Status,
                Expr::value(Status::Pending),
            )
            .col_expr(webhook_deliveries::Column::Attempts, Expr::value(0))
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(now))
            .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_deliveries::Column::Id.is_in(chunk.iter().copied()))
            .exec(&txn)
            .await?
            .rows_affected;
    }
    txn.commit().await?;
    Ok(n)
}

/// Records a `webhook.test` event for this webhook alone (enabled or not;
/// a disabled webhook receives it once re-enabled). Returns the event id.
pub async fn send_test(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    webhook_id: Uuid,
) -> Result<String, WebhookError> {
    // Checked before the transaction: on SQLite a transaction must write
    // first to wait for the write lock rather than fail.
    registry::get(db, Scope::Instance(instance_id), webhook_id).await?;
    let id = hooks
        .write(db, async |txn, outbox| {
            outbox
                .record_for(
                    txn,
                    instance_id,
                    EventType::WebhookTest,
                    json!({ "webhook_id": webhook_id, "message": "a test event from wagate" }),
                    Audience::Only(webhook_id),
                )
                .await
        })
        .await?;
    Ok(id)
}

/// An instance's sequenced events after the cursor, oldest first.
pub async fn list_events(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    after: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<Event>, WebhookError> {
    if entity::instances::Entity::find_by_id(instance_id)
        .one(db)
        .await?
        .is_none()
    {
        return Err(WebhookError::InstanceNotFound(instance_id));
    }
    // Every event committed before the request is numbered first: a
    // reader sees its own writes.
    super::sequencer::sequence_now(db, hooks).await?;
    let after = match after {
        None => 0,
        Some(cursor) => position_after(db, hooks, instance_id, cursor).await?,
    };
    Ok(webhook_events::Entity::find()
        .filter(webhook_events::Column::InstanceId.eq(instance_id))
        .filter(webhook_events::Column::Position.gt(after))
        .order_by_asc(webhook_events::Column::Position)
        .limit(limit)
        .all(db)
        .await?)
}

/// Where a reader stands in an instance's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The position of the last event read.
    Position(i64),
    /// The id (`msg_…`) of the last event read.
    EventId(String),
}

impl std::str::FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if s.starts_with("msg_") {
            Ok(Self::EventId(s.to_owned()))
        } else {
            s.parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .map(Self::Position)
                .ok_or(())
        }
    }
}

/// The position a cursor stands at. An event id that is no longer stored
/// (purged by retention) stands just before the first later event by id:
/// the best a reader can still be given.
async fn position_after(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    cursor: &Cursor,
) -> Result<i64, DbErr> {
    let id = match cursor {
        Cursor::Position(p) => return Ok(*p),
        Cursor::EventId(id) => id,
    };
    let event = super::sequencer::numbered(db, hooks, id).await?;
    if let Some(event) = event.filter(|e| e.instance_id == instance_id) {
        return Ok(event.position);
    }
    let next = webhook_events::Entity::find()
        .filter(webhook_events::Column::InstanceId.eq(instance_id))
        .filter(webhook_events::Column::Id.gt(id.clone()))
        .filter(webhook_events::Column::Position.gt(0))
        .order_by_asc(webhook_events::Column::Id)
        .one(db)
        .await?;
    Ok(match next {
        Some(event) => event.position - 1,
        None => i64::MAX,
    })
}

/// Deletes events recorded before `cutoff`, with their deliveries and
/// attempts (by cascade), except events with a dead delivery, which stay
/// until `dead_cutoff` so they can still be inspected and replayed. Works in
/// batches so no single statement holds locks for long. Returns how many
/// events went.
pub async fn purge_events(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    dead_cutoff: DateTime<Utc>,
) -> Result<u64, DbErr> {
    const BATCH: u64 = 1000;
    let mut purged = 0;
    loop {
        let with_dead = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::EventId)
            .filter(webhook_deliveries::Column::Status.eq(Status::Dead))
            .into_query();
        let query = webhook_events::Entity::find()
            .select_only()
            .column(webhook_events::Column::Id)
            .filter(
                sea_orm::Condition::any()
                    .add(webhook_events::Column::CreatedAt.lt(dead_cutoff))
                    .add(
                        sea_orm::Condition::all()
                            .add(webhook_events::Column::CreatedAt.lt(cutoff))
                            .add(webhook_events::Column::Id.not_in_subquery(with_dead)),
                    ),
            );
        let ids: Vec<String> = query.limit(BATCH).into_tuple().all(db).await?;
        if ids.is_empty() {
            return Ok(purged);
        }
        let n = ids.len() as u64;
        purged += webhook_events::Entity::delete_many()
            .filter(webhook_events::Column::Id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
        if n < BATCH {
            return Ok(purged);
        }
    }
}

/// How many deliveries are due now: pending and due, or claimed by a
/// process whose lease ran out (a crashed one).
pub async fn count_due(db: &DatabaseConnection) -> Result<u64, DbErr> {
    super::due::count_due(db).await
}
