//! Claiming due deliveries: the only backend-specific SQL of the dispatcher.
//!
//! One statement leases a batch of the due queue ([`super::due`]) and
//! returns it; the deliveries are marked `delivering` with it. On
//! PostgreSQL the candidate rows are locked `FOR UPDATE SKIP LOCKED`, so
//! concurrent dispatchers (in this process or others) take disjoint rows
//! without waiting on each other, and the lease, the marking and the load
//! are one round trip; on SQLite the transaction runs under the database's
//! one write lock, which serialises claimers just as safely.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{webhook_events, webhooks};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, Statement, Value,
};
use uuid::Uuid;

use super::attempt::Job;
use super::due;
use super::lanes::Rooms;
use super::registry::live_secrets;
use super::sink;
use crate::sealing::Keyring;

/// A claimed row, before its event and webhook are loaded.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub delivery_id: Uuid,
    pub event_id: String,
    pub webhook_id: Uuid,
    pub attempts: i32,
}

/// Claims due deliveries for `token` until `lease_until`: at most
/// `rooms.total`, and per webhook at most its room (webhooks with none are
/// skipped), so every claimed row can start at once. It reads the
/// candidates, then leases them and marks their deliveries in a write
/// transaction.
///
/// Due means: waiting in the queue (not leased) and `next_attempt_at` has
/// come ([`reclaim_expired`] ends the leases of dispatchers that died).
/// The queue holds open deliveries only and is read in index order, so a
/// claim reads a batch, not the whole backlog. Disabled webhooks are
/// skipped. For an `ordered` webhook only the head of each instance's
/// queue is due: a sequenced event (see [`super::sequencer`]) with no
/// open delivery of an earlier position of the same instance.
/// Positions follow commit order, and an event not yet sequenced will get
/// a later position than every sequenced one, so a later event never
/// overtakes one that committed after it was claimed.
pub async fn claim(
    db: &DatabaseConnection,
    token: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    rooms: &Rooms,
) -> Result<Vec<ClaimedRow>, DbErr> {
    use entity::webhook_deliveries::{Column, Entity, Status};
    use sea_orm::sea_query::Expr;
    let backend = db.get_database_backend();
    // Read first, outside any transaction (readers never wait in WAL
    // mode): most looks find nothing, and take no write lock then.
    let (sql, values) = candidates(backend, now, rooms);
    let found: Vec<Uuid> = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, &sql),
            values,
        ))
        .await?
        .into_iter()
        .map(|row| row.try_get("", "delivery_id"))
        .collect::<Result<_, DbErr>>()?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let txn = crate::db::begin_write(db).await?;
    let mut out = Vec::with_capacity(found.len());
    for chunk in found.chunks(500) {
        // Still waiting: nobody leased it since it was read.
        let leased: Vec<Uuid> = entity::webhook_due::Entity::update_many()
            .col_expr(
                entity::webhook_due::Column::LockedUntil,
                Expr::value(lease_until),
            )
            .col_expr(entity::webhook_due::Column::ClaimToken, Expr::value(token))
            .filter(entity::webhook_due::Column::DeliveryId.is_in(chunk.iter().copied()))
            .filter(entity::webhook_due::Column::ClaimToken.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .map(|q| q.delivery_id)
            .collect();
        if leased.is_empty() {
            continue;
        }
        let marked = Entity::update_many()
            .col_expr(Column::Status, Expr::value(Status::Delivering))
            .col_expr(Column::LockedUntil, Expr::value(lease_until))
            .col_expr(Column::ClaimToken, Expr::value(token))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.is_in(leased))
            .exec_with_returning(&txn)
            .await?;
        out.extend(marked.into_iter().map(|d| ClaimedRow {
            delivery_id: d.id,
            event_id: d.event_id,
            webhook_id: d.webhook_id,
            attempts: d.attempts,
        }));
    }
    txn.commit().await?;
    // RETURNING order is unspecified; keep event order within the batch.
    out.sort_by_key(|r| r.delivery_id);
    Ok(out)
}

/// Claims due deliveries and loads what their attempts need. On PostgreSQL
/// that is one round trip (the leasing and marking UPDATEs in CTEs, joined
/// to events and webhooks); elsewhere [`claim`], then [`load_jobs`]. Returns how many
/// rows were claimed and the jobs.
pub async fn claim_jobs(
    db: &DatabaseConnection,
    keyring: &Keyring,
    token: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    rooms: &Rooms,
) -> Result<(usize, Vec<Job>), DbErr> {
    let backend = db.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        let rows = claim(db, token, now, lease_until, rooms).await?;
        let jobs = if rows.is_empty() {
            Vec::new()
        } else {
            load_jobs(db, keyring, &rows, lease_until).await?
        };
        return Ok((rows.len(), jobs));
    }
    let (candidates, found) = candidates(backend, now, rooms);
    let mut values: Vec<Value> = vec![lease_until.into(), token.into()];
    values.extend(found);
    values.extend([lease_until.into(), token.into(), now.into()]);
    let sql = format!(
        "WITH leased AS (UPDATE webhook_due SET locked_until = ?, claim_token = ? \
           WHERE delivery_id IN ({candidates}) RETURNING delivery_id), \
         claimed AS (UPDATE webhook_deliveries d \
           SET status = 'delivering', locked_until = ?, claim_token = ?, updated_at = ? \
           FROM leased l WHERE d.id = l.delivery_id \
           RETURNING d.id, d.event_id, d.webhook_id, d.attempts) \
         SELECT c.id, c.event_id, c.webhook_id, c.attempts, \
           e.instance_id, e.position, e.sequence, e.type AS event_type, e.data, e.created_at, \
           w.url, w.secret, w.previous_secret, w.previous_secret_expires_at, \
           w.kind, w.target, w.credentials \
         FROM claimed c \
         JOIN webhook_events e ON e.id = c.event_id \
         JOIN webhooks w ON w.id = c.webhook_id \
         ORDER BY c.id"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            placeholders(backend, &sql),
            values,
        ))
        .await?;
    let claimed = rows.len();
    let jobs = rows
        .into_iter()
        .map(|row| {
            let event = webhook_events::Model {
                id: row.try_get("", "event_id")?,
                instance_id: row.try_get("", "instance_id")?,
                position: row.try_get("", "position")?,
                sequence: row.try_get("", "sequence")?,
                event_type: row.try_get("", "event_type")?,
                data: row.try_get("", "data")?,
                created_at: row.try_get("", "created_at")?,
            };
            let attempts: i32 = row.try_get("", "attempts")?;
            let webhook_id: Uuid = row.try_get("", "webhook_id")?;
            let url: String = row.try_get("", "url")?;
            let kind: String = row.try_get("", "kind")?;
            let target: Option<serde_json::Value> = row.try_get("", "target")?;
            let credentials: Option<String> = row.try_get("", "credentials")?;
            Ok(Job {
                delivery_id: row.try_get("", "id")?,
                webhook_id,
                instance_id: event.instance_id,
                event_type: event.event_type.clone(),
                attempt: attempts + 1,
                destination: sink::destination(
                    keyring,
                    webhook_id,
                    &kind,
                    &url,
                    target.as_ref(),
                    credentials.as_deref(),
                ),
                url,
                secrets: signing_secrets(
                    keyring,
                    row.try_get("", "webhook_id")?,
                    row.try_get("", "secret")?,
                    row.try_get("", "previous_secret")?,
                    row.try_get("", "previous_secret_expires_at")?,
                ),
                body: super::payload::body(&event),
                event_id: event.id,
                lease_until,
                handed_off: false,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    Ok((claimed, jobs))
}

/// The due rows to claim, in order (a query with `?` placeholders), and its
/// values.
///
/// The innermost query takes the first due candidates in order (locking
/// them on PostgreSQL); the next ranks each webhook's candidates and keeps
/// those within its room. A candidate beyond its webhook's room is only
/// read, never written.
fn candidates(backend: DatabaseBackend, now: DateTime<Utc>, rooms: &Rooms) -> (String, Vec<Value>) {
    let count = |n: usize| Value::from(i64::try_from(n).unwrap_or(i64::MAX));
    // Values in the order their placeholders appear in the text.
    let mut values: Vec<Value> = Vec::new();
    let mut room = String::new();
    for (id, r) in rooms.known.iter().filter(|(_, room)| *room > 0) {
        room.push_str(" WHEN ? THEN CAST(? AS BIGINT)");
        values.push((*id).into());
        values.push(count(*r));
    }
    let room = if room.is_empty() {
        "CAST(? AS BIGINT)".to_owned()
    } else {
        format!("CASE c.webhook_id{room} ELSE CAST(? AS BIGINT) END")
    };
    values.push(count(rooms.default));
    values.push(now.into());
    let full: Vec<Uuid> = rooms
        .known
        .iter()
        .filter(|(_, room)| *room == 0)
        .map(|(id, _)| *id)
        .collect();
    let exclude = if full.is_empty() {
        String::new()
    } else {
        values.extend(full.iter().map(|id| Value::from(*id)));
        format!(
            " AND q.webhook_id NOT IN ({})",
            vec!["?"; full.len()].join(", ")
        )
    };
    // Candidates: enough to fill the claim even when the head of the queue
    // belongs to a webhook with little room.
    values.push(count(rooms.candidates.max(rooms.total)));
    values.push(count(rooms.total));
    let lock = match backend {
        DatabaseBackend::Postgres => " FOR UPDATE OF q SKIP LOCKED",
        _ => "",
    };
    // The head check walks the webhook's open rows (SQLite takes CROSS
    // JOIN as the join order; PostgreSQL plans it as any inner join).
    // SQLite numbers events as it records them (see `super::sequencer`);
    // elsewhere an ordered delivery waits for its event's number.
    let (sequenced, earlier_sequenced) = match backend {
        DatabaseBackend::Sqlite => ("", ""),
        _ => (
            "EXISTS (SELECT 1 FROM webhook_events se \
               WHERE se.id = q.event_id AND se.sequence <> 0) AND",
            "AND ee.sequence <> 0 ",
        ),
    };
    let sql = format!(
        "SELECT r.delivery_id FROM ( \
             SELECT c.delivery_id, c.next_attempt_at, \
               ROW_NUMBER() OVER (PARTITION BY c.webhook_id \
                 ORDER BY c.next_attempt_at, c.delivery_id) AS n, \
               {room} AS room \
             FROM ( \
               SELECT q.delivery_id, q.webhook_id, q.next_attempt_at FROM webhook_due q \
               JOIN webhooks w ON w.id = q.webhook_id \
               WHERE w.enabled = TRUE \
                 AND q.claim_token IS NULL AND q.next_attempt_at <= ? \
                 AND (w.ordered = FALSE OR ({sequenced} NOT EXISTS ( \
                   SELECT 1 FROM webhook_events de \
                   CROSS JOIN webhook_due e \
                   CROSS JOIN webhook_events ee \
                   WHERE de.id = q.event_id \
                     AND e.webhook_id = q.webhook_id \
                     AND ee.id = e.event_id \
                     AND ee.instance_id = de.instance_id \
                     {earlier_sequenced}\
                     AND ee.position < de.position))){exclude} \
               ORDER BY q.next_attempt_at, q.delivery_id \
               LIMIT ?{lock}) c) r \
           WHERE r.n <= r.room \
           ORDER BY r.next_attempt_at, r.delivery_id \
           LIMIT ?"
    );
    (sql, values)
}

/// `?` placeholders in PostgreSQL's `$n` spelling where needed.
pub(super) fn placeholders(backend: DatabaseBackend, sql: &str) -> String {
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

/// Makes deliveries whose lease ran out (their dispatcher died or hung)
/// pending again, for any dispatcher to claim. Returns how many.
pub async fn reclaim_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let n = due::unlease(&txn, due::Leases::ExpiredBefore(now)).await?;
    txn.commit().await?;
    Ok(n)
}

/// Gives claimed rows back (queued too long to start, or at shutdown)
/// so any dispatcher may take them at once.
pub async fn release(
    db: &DatabaseConnection,
    token: Uuid,
    ids: Option<&[Uuid]>,
) -> Result<u64, DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let n = due::unlease(&txn, due::Leases::Of(token, ids)).await?;
    txn.commit().await?;
    Ok(n)
}

/// Loads the events and webhooks of claimed rows (two queries for the whole
/// batch) and builds the jobs. Rows whose event or webhook vanished in the
/// meantime are dropped (a cascade deletes their delivery too).
pub async fn load_jobs<C: ConnectionTrait>(
    db: &C,
    keyring: &Keyring,
    rows: &[ClaimedRow],
    lease_until: DateTime<Utc>,
) -> Result<Vec<Job>, DbErr> {
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
                event_type: event.event_type.clone(),
                attempt: r.attempts + 1,
                url: hook.url.clone(),
                destination: destination_of(keyring, hook),
                secrets: signing_secrets(
                    keyring,
                    hook.id,
                    hook.secret.clone(),
                    hook.previous_secret.clone(),
                    hook.previous_secret_expires_at,
                ),
                body: super::payload::body(event),
                lease_until,
                handed_off: false,
            })
        })
        .collect())
}

/// Where a registration's jobs go.
pub(super) fn destination_of(keyring: &Keyring, hook: &webhooks::Model) -> sink::Destination {
    sink::destination(
        keyring,
        hook.id,
        &hook.kind,
        &hook.url,
        hook.target.as_ref(),
        hook.credentials.as_deref(),
    )
}

/// The secrets a job signs with, opened; a secret that cannot be opened
/// (a key missing from the settings) becomes the job's error, so that one
/// delivery is retried later instead of the whole batch failing.
pub(super) fn signing_secrets(
    keyring: &Keyring,
    webhook_id: Uuid,
    secret: String,
    previous: Option<String>,
    previous_until: Option<DateTime<Utc>>,
) -> Result<Vec<String>, String> {
    live_secrets(
        keyring,
        webhook_id,
        &secret,
        previous.as_deref(),
        previous_until,
    )
    .map_err(|e| e.to_string())
}
