//! The sequencer: committed events get their per-instance `position` and
//! their global `sequence` after the fact, a batch at a time.
//!
//! Recording an event takes no lock: it is inserted unsequenced (both
//! numbers 0). A sequencer transaction first locks the `event_sequence`
//! row, so sequencers (of this process or others) run one at a time; it
//! then reads the committed unsequenced events in id order, numbers them on
//! from each instance's counter and the global one, and commits. A batch
//! becomes visible all at once and after every earlier batch, so a reader
//! that has seen position `p` (or sequence `s`) will never see a smaller
//! one appear later: cursors on either number never skip and never need a
//! horizon. Events of one transaction keep their recording order (ids are
//! time-ordered within a process); events of concurrent transactions have
//! no order of their own, and get the one the sequencer gives them.
//!
//! On SQLite the one write lock already orders every transaction, so the
//! recording transaction numbers its events itself ([`inline`]), at no
//! cost to concurrency, and this finds nothing to do.
//!
//! Readers (the catch-up cursor, ordered webhooks, the event streams) see
//! only sequenced events; a webhook that is not ordered is handed its
//! delivery at commit and does not wait for the sequencer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use entity::webhook_events;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::Webhooks;
use super::claim::placeholders;

/// Events numbered per transaction; more wait for the next one at once.
const BATCH: u64 = 1000;
/// How often the sequencer looks without being woken: events recorded by
/// another process, or without an outbox, are sequenced within this.
const SWEEP: Duration = Duration::from_millis(200);

/// Wakes the sequencer after a commit. Cheap to clone.
#[derive(Clone, Default)]
pub struct Signal {
    notify: Arc<Notify>,
    /// A commit left deliveries pending: once sequenced, ordered ones may
    /// be due, so the dispatcher is woken again.
    pending: Arc<AtomicBool>,
}

impl Signal {
    pub fn wake(&self, deliveries_pending: bool) {
        if deliveries_pending {
            self.pending.store(true, Ordering::Release);
        }
        self.notify.notify_one();
    }
}

/// What one sequencer transaction numbered.
#[derive(Debug, Default)]
pub struct Sequenced {
    /// Events numbered.
    pub events: usize,
    /// Instances that have newly sequenced events.
    pub instances: Vec<Uuid>,
}

/// Sequences until `stop` turns true: when woken, and every [`SWEEP`].
pub async fn run(db: DatabaseConnection, webhooks: Webhooks, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = sequence_now(&db, &webhooks).await {
            // The events stay unsequenced; the next sweep tries again.
            tracing::warn!(error = %e, "sequencing events failed");
        }
        tokio::select! {
            () = webhooks.sequencer.notify.notified() => {}
            () = tokio::time::sleep(SWEEP) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Sequences every event committed so far, then tells the event streams
/// which instances have new events, and wakes the dispatcher when
/// deliveries were left pending (ordered ones are due only once
/// sequenced). The sequencer task calls it when woken; a reader calls it
/// first so that it sees every event committed before it asked.
pub async fn sequence_now(db: &DatabaseConnection, webhooks: &Webhooks) -> Result<(), DbErr> {
    let signal = &webhooks.sequencer;
    let deliveries = signal.pending.swap(false, Ordering::AcqRel);
    match drain(db).await {
        Ok(sequenced) => {
            webhooks.streams.committed(&sequenced.instances);
            if deliveries && sequenced.events > 0 {
                webhooks.wake();
            }
            Ok(())
        }
        Err(e) => {
            signal.pending.fetch_or(deliveries, Ordering::AcqRel);
            Err(e)
        }
    }
}

/// Sequences every committed unsequenced event, a batch per transaction.
async fn drain(db: &DatabaseConnection) -> Result<Sequenced, DbErr> {
    let mut all = Sequenced::default();
    loop {
        let batch = sequence_batch(db).await?;
        all.events += batch.events;
        for id in batch.instances {
            if !all.instances.contains(&id) {
                all.instances.push(id);
            }
        }
        if batch.events < BATCH as usize {
            return Ok(all);
        }
    }
}

/// Numbers up to [`BATCH`] committed unsequenced events in one transaction.
async fn sequence_batch(db: &DatabaseConnection) -> Result<Sequenced, DbErr> {
    // A look without the lock first: idle sweeps cost one indexed read.
    let any: Option<String> = unsequenced().limit(1).into_tuple().one(db).await?;
    if any.is_none() {
        return Ok(Sequenced::default());
    }
    let txn = crate::db::begin_write(db).await?;
    let backend = txn.get_database_backend();
    // Locks the row until commit: sequencers take turns.
    let row = txn
        .query_one_raw(Statement::from_string(
            backend,
            "UPDATE event_sequence SET last_sequence = last_sequence WHERE id = 1 \
             RETURNING last_sequence",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("event sequence".into()))?;
    let mut sequence: i64 = row.try_get("", "last_sequence")?;
    // Read under the lock, so no other sequencer numbers these.
    let todo: Vec<(String, Uuid)> = unsequenced()
        .column(webhook_events::Column::InstanceId)
        .limit(BATCH)
        .into_tuple()
        .all(&txn)
        .await?;
    if todo.is_empty() {
        txn.commit().await?;
        return Ok(Sequenced::default());
    }
    let mut instances: Vec<Uuid> = todo.iter().map(|(_, i)| *i).collect();
    instances.sort_unstable();
    instances.dedup();
    let mut positions = last_positions(&txn, &instances).await?;

    let mut cases_seq = String::new();
    let mut cases_pos = String::new();
    let mut values_seq: Vec<Value> = Vec::with_capacity(todo.len() * 2);
    let mut values_pos: Vec<Value> = Vec::with_capacity(todo.len() * 2);
    for (id, instance) in &todo {
        sequence += 1;
        let position = positions.entry(*instance).or_insert(0);
        *position += 1;
        cases_seq.push_str(" WHEN ? THEN CAST(? AS BIGINT)");
        values_seq.push(id.clone().into());
        values_seq.push(sequence.into());
        cases_pos.push_str(" WHEN ? THEN CAST(? AS BIGINT)");
        values_pos.push(id.clone().into());
        values_pos.push((*position).into());
    }
    let ids = vec!["?"; todo.len()].join(", ");
    let sql = format!(
        "UPDATE webhook_events SET sequence = CASE id{cases_seq} END, \
         position = CASE id{cases_pos} END WHERE id IN ({ids})"
    );
    let mut values = values_seq;
    values.extend(values_pos);
    values.extend(todo.iter().map(|(id, _)| Value::from(id.clone())));
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        placeholders(backend, &sql),
        values,
    ))
    .await?;

    let rows = vec!["(?, ?)"; instances.len()].join(", ");
    let sql = format!(
        "INSERT INTO event_positions (instance_id, last_position) VALUES {rows} \
         ON CONFLICT (instance_id) DO UPDATE SET last_position = excluded.last_position"
    );
    let mut values: Vec<Value> = Vec::with_capacity(instances.len() * 2);
    for id in &instances {
        values.push((*id).into());
        values.push(positions.get(id).copied().unwrap_or(0).into());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        placeholders(backend, &sql),
        values,
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        placeholders(
            backend,
            "UPDATE event_sequence SET last_sequence = ? WHERE id = 1",
        ),
        [sequence.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(Sequenced {
        events: todo.len(),
        instances,
    })
}

/// Committed events not yet numbered, in id order (recording order).
fn unsequenced() -> sea_orm::Select<webhook_events::Entity> {
    webhook_events::Entity::find()
        .select_only()
        .column(webhook_events::Column::Id)
        .filter(webhook_events::Column::Sequence.eq(0))
        .order_by_asc(webhook_events::Column::Id)
}

async fn last_positions<C: ConnectionTrait>(
    conn: &C,
    instances: &[Uuid],
) -> Result<HashMap<Uuid, i64>, DbErr> {
    let rows: Vec<(Uuid, i64)> = entity::event_positions::Entity::find()
        .select_only()
        .column(entity::event_positions::Column::InstanceId)
        .column(entity::event_positions::Column::LastPosition)
        .filter(entity::event_positions::Column::InstanceId.is_in(instances.iter().copied()))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The stored event `id` with its numbers. One committed but not yet
/// sequenced (a reader may know its id from a webhook that is not ordered,
/// delivered at commit) is sequenced now, so a cursor at it is exact.
pub async fn numbered(
    db: &DatabaseConnection,
    webhooks: &Webhooks,
    id: &str,
) -> Result<Option<webhook_events::Model>, DbErr> {
    let find = || webhook_events::Entity::find_by_id(id.to_owned()).one(db);
    match find().await? {
        Some(event) if event.sequence == 0 => {
            sequence_now(db, webhooks).await?;
            find().await
        }
        found => Ok(found),
    }
}

/// The position and sequence an event takes inside its recording
/// transaction, where that costs no concurrency: on SQLite, whose write
/// lock the transaction holds until it commits, so numbers follow commit
/// order. `None` elsewhere: the sequencer numbers the event once committed.
pub async fn inline<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
) -> Result<Option<(i64, i64)>, DbErr> {
    let backend = conn.get_database_backend();
    if backend != DatabaseBackend::Sqlite {
        return Ok(None);
    }
    let position = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO event_positions (instance_id, last_position) VALUES (?, 1) \
             ON CONFLICT (instance_id) DO UPDATE SET \
               last_position = event_positions.last_position + 1 \
             RETURNING last_position",
            [instance_id.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("event position".into()))?
        .try_get("", "last_position")?;
    let sequence = conn
        .query_one_raw(Statement::from_string(
            backend,
            "UPDATE event_sequence SET last_sequence = last_sequence + 1 WHERE id = 1 \
             RETURNING last_sequence",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("event sequence".into()))?
        .try_get("", "last_sequence")?;
    Ok(Some((position, sequence)))
}
