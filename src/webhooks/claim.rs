//! Claiming due deliveries: the only backend-specific SQL of the dispatcher.
//!
//! One statement marks a batch `delivering` under a lease and returns it. On
//! PostgreSQL the candidate rows are locked `FOR UPDATE SKIP LOCKED`, so
//! concurrent dispatchers (in this process or others) take disjoint rows
//! without waiting on each other; on SQLite the single UPDATE runs under the
//! database's one write lock, which serialises claimers just as safely.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{webhook_events, webhooks};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, Statement,
    Value,
};
use uuid::Uuid;

use super::attempt::Job;
use super::registry::signing_secrets;

/// A claimed row, before its event and webhook are loaded.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub delivery_id: Uuid,
    pub event_id: String,
    pub webhook_id: Uuid,
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries for `token` until `lease_until`,
/// skipping webhooks in `saturated` (this dispatcher already has as many in
/// flight to them as it allows).
///
/// Due means: `pending` and `next_attempt_at` has come, or `delivering` with
/// an expired lease (its dispatcher died). Disabled webhooks are skipped. For
/// an `ordered` webhook only the head of its queue (no earlier delivery still
/// pending or delivering) is due.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    token: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
    saturated: &[Uuid],
) -> Result<Vec<ClaimedRow>, DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![
        lease_until.into(),
        token.into(),
        now.into(),
        now.into(),
        now.into(),
    ];
    let exclude = if saturated.is_empty() {
        String::new()
    } else {
        values.extend(saturated.iter().map(|id| Value::from(*id)));
        format!(
            " AND d.webhook_id NOT IN ({})",
            vec!["?"; saturated.len()].join(", ")
        )
    };
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let lock = match backend {
        DatabaseBackend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        _ => "",
    };
    let sql = format!(
        "UPDATE webhook_deliveries \
         SET status = 'delivering', locked_until = ?, claim_token = ?, updated_at = ? \
         WHERE id IN ( \
           SELECT d.id FROM webhook_deliveries d \
           JOIN webhooks w ON w.id = d.webhook_id \
           WHERE w.enabled = TRUE \
             AND ((d.status = 'pending' AND d.next_attempt_at <= ?) \
               OR (d.status = 'delivering' AND d.locked_until < ?)) \
             AND (w.ordered = FALSE OR NOT EXISTS ( \
               SELECT 1 FROM webhook_deliveries e \
               WHERE e.webhook_id = d.webhook_id AND e.id < d.id \
                 AND e.status IN ('pending', 'delivering'))){exclude} \
           ORDER BY d.next_attempt_at, d.id \
           LIMIT ?{lock}) \
         RETURNING id, event_id, webhook_id, attempts"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, &sql),
            values,
        ))
        .await?;
    let mut out = rows
        .into_iter()
        .map(|row| {
            Ok(ClaimedRow {
                delivery_id: row.try_get("", "id")?,
                event_id: row.try_get("", "event_id")?,
                webhook_id: row.try_get("", "webhook_id")?,
                attempts: row.try_get("", "attempts")?,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    // RETURNING order is unspecified; keep event order within the batch.
    out.sort_by_key(|r| r.delivery_id);
    Ok(out)
}

/// `?` placeholders in PostgreSQL's `$n` spelling where needed.
fn placeholders(backend: DatabaseBackend, sql: &str) -> String {
    if backend != DatabaseBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Gives claimed rows back (e.g. over the per-webhook limit, or at shutdown)
/// so any dispatcher may take them at once.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    token: Uuid,
    ids: Option<&[Uuid]>,
) -> Result<u64, DbErr> {
    use entity::webhook_deliveries::{Column, Entity, Status};
    use sea_orm::sea_query::Expr;
    let mut update = Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Pending))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::ClaimToken, Expr::value(Option::<Uuid>::None))
        .filter(Column::ClaimToken.eq(token))
        .filter(Column::Status.eq(Status::Delivering));
    if let Some(ids) = ids {
        update = update.filter(Column::Id.is_in(ids.iter().copied()));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// Loads the events and webhooks of claimed rows (two queries for the whole
/// batch) and builds the jobs. Rows whose event or webhook vanished in the
/// meantime are dropped (a cascade deletes their delivery too).
pub async fn load_jobs<C: ConnectionTrait>(db: &C, rows: &[ClaimedRow]) -> Result<Vec<Job>, DbErr> {
    let mut event_ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let mut webhook_ids: Vec<Uuid> = rows.iter().map(|r| r.webhook_id).collect();
    webhook_ids.sort_unstable();
    webhook_ids.dedup();
    let events: HashMap<String, webhook_events::Model> = webhook_events::Entity::find()
        .filter(webhook_events::Column::Id.is_in(event_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let hooks: HashMap<Uuid, webhooks::Model> = webhooks::Entity::find()
        .filter(webhooks::Column::Id.is_in(webhook_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|w| (w.id, w))
        .collect();
    Ok(rows
        .iter()
        .filter_map(|r| {
            let event = events.get(&r.event_id)?;
            let hook = hooks.get(&r.webhook_id)?;
            Some(Job {
                delivery_id: r.delivery_id,
                webhook_id: r.webhook_id,
                instance_id: event.instance_id,
                event_id: event.id.clone(),
                attempt: r.attempts + 1,
                url: hook.url.clone(),
                secrets: signing_secrets(hook)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                body: super::payload::body(event),
            })
        })
        .collect())
}
