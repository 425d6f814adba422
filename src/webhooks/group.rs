//! Group commit of the small recording transactions on SQLite.
//!
//! SQLite has one write lock, and a transaction that finds it taken waits
//! in SQLite's busy handler, which polls with growing sleeps: with a
//! thousand one-event transactions a second racing the dispatcher's writes,
//! the unluckiest waited most of a second. Here the writers of this
//! process queue for the lock in arrival order instead (the turn), and
//! those that arrive while a transaction is still working or committing
//! share the next one: each runs in its own savepoint, so a failure undoes
//! only its own writes, and all commit together with one sync to disk.
//! A caller hears of success only once that transaction has committed, so
//! nothing (an outbox's hand-offs, an inbound message's acknowledgement)
//! runs ahead of its commit. A batch commits as soon as none of its
//! members is working, so a lone event waits for nobody.
//!
//! PostgreSQL commits concurrent transactions side by side: there each
//! caller gets a transaction of its own.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::{Notify, OwnedMutexGuard, watch};

/// Most callers sharing one transaction.
const MAX_MEMBERS: usize = 64;
/// How long after it opened a batch still takes members.
const WINDOW: Duration = Duration::from_millis(20);

/// Shared by every writer of one database in this process.
#[derive(Default)]
pub struct Group {
    open: Mutex<Option<Arc<Batch>>>,
    /// SQLite's write lock, taken in the order writers arrive.
    turn: Arc<tokio::sync::Mutex<()>>,
}

struct Batch {
    born: Instant,
    members: Mutex<Members>,
    /// Told when the last working member leaves.
    idle: Notify,
    slot: tokio::sync::Mutex<Slot>,
    done: watch::Sender<Option<Result<(), String>>>,
}

struct Members {
    /// Joined and not yet done with their work.
    active: usize,
    joined: usize,
    closed: bool,
}

#[derive(Default)]
struct Slot {
    /// The shared transaction, with the turn it holds until it ends.
    txn: Option<(DatabaseTransaction, OwnedMutexGuard<()>)>,
    /// Why the batch cannot commit (a savepoint that could not be undone).
    failed: Option<String>,
    finished: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Group {
    /// Runs `work` in a write transaction and returns once that has
    /// committed. On SQLite the transaction may be shared with other
    /// callers (see the module notes); `work` runs in a savepoint of it.
    pub async fn write<T, F>(self: &Arc<Self>, db: &DatabaseConnection, work: F) -> Result<T, DbErr>
    where
        F: for<'a> AsyncFnOnce(&'a DatabaseTransaction) -> Result<T, DbErr>,
    {
        if db.get_database_backend() != DatabaseBackend::Sqlite {
            let txn = crate::db::begin_write(db).await?;
            let value = work(&txn).await?;
            txn.commit().await?;
            return Ok(value);
        }
        let batch = self.join();
        let member = Member(batch.clone());
        let value = {
            let mut slot = batch.slot.lock().await;
            if slot.finished {
                return Err(DbErr::Custom("a finished write batch was joined".into()));
            }
            if slot.txn.is_none() && slot.failed.is_none() {
                let turn = self.turn.clone().lock_owned().await;
                match crate::db::begin_write(db).await {
                    Ok(txn) => slot.txn = Some((txn, turn)),
                    Err(e) => slot.failed = Some(e.to_string()),
                }
            }
            if let Some(failed) = &slot.failed {
                return Err(DbErr::Custom(failed.clone()));
            }
            let Some((txn, _)) = &slot.txn else {
                return Err(DbErr::Custom("the write batch has no transaction".into()));
            };
            let savepoint = txn.begin().await?;
            match work(&savepoint).await {
                Ok(value) => {
                    if let Err(e) = savepoint.commit().await {
                        slot.failed = Some(e.to_string());
                        return Err(e);
                    }
                    value
                }
                Err(e) => {
                    // Undone alone; the others still commit.
                    if let Err(undo) = savepoint.rollback().await {
                        slot.failed = Some(undo.to_string());
                    }
                    return Err(e);
                }
            }
        };
        let mut done = batch.done.subscribe();
        drop(member);
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| DbErr::Custom("the write batch ended unfinished".into()))?
            .clone();
        match outcome {
            Some(Ok(())) => Ok(value),
            Some(Err(e)) => Err(DbErr::Custom(e)),
            None => Err(DbErr::Custom("the write batch ended unfinished".into())),
        }
    }

    /// Waits for this process's turn at SQLite's write lock, for a writer
    /// that needs a transaction of its own (the dispatcher's); `None`
    /// elsewhere. Hold it until that transaction has ended.
    pub async fn turn(&self, db: &DatabaseConnection) -> Option<OwnedMutexGuard<()>> {
        if db.get_database_backend() != DatabaseBackend::Sqlite {
            return None;
        }
        Some(self.turn.clone().lock_owned().await)
    }

    /// The open batch, if it still takes members, or a new one.
    fn join(self: &Arc<Self>) -> Arc<Batch> {
        let mut open = lock(&self.open);
        if let Some(batch) = open.as_ref() {
            let mut m = lock(&batch.members);
            if !m.closed && m.joined < MAX_MEMBERS && batch.born.elapsed() < WINDOW {
                m.active += 1;
                m.joined += 1;
                return batch.clone();
            }
        }
        let batch = Arc::new(Batch {
            born: Instant::now(),
            members: Mutex::new(Members {
                active: 1,
                joined: 1,
                closed: false,
            }),
            idle: Notify::new(),
            slot: tokio::sync::Mutex::new(Slot::default()),
            done: watch::Sender::new(None),
        });
        *open = Some(batch.clone());
        tokio::spawn(commit_when_idle(self.clone(), batch.clone()));
        batch
    }

    /// Closes `batch` to new members if none is working. Whether it did.
    fn close_if_idle(&self, batch: &Arc<Batch>) -> bool {
        let mut open = lock(&self.open);
        let mut m = lock(&batch.members);
        if m.active > 0 {
            return false;
        }
        m.closed = true;
        if open.as_ref().is_some_and(|b| Arc::ptr_eq(b, batch)) {
            *open = None;
        }
        true
    }
}

/// A member's place in a batch; leaving (however the member ends: done,
/// failed, cancelled) may let the batch commit.
struct Member(Arc<Batch>);

impl Drop for Member {
    fn drop(&mut self) {
        let mut m = lock(&self.0.members);
        m.active = m.active.saturating_sub(1);
        if m.active == 0 {
            self.0.idle.notify_one();
        }
    }
}

/// Commits (or, when a member left it unusable, rolls back) the batch once
/// no member is working, and tells every member how it went.
async fn commit_when_idle(group: Arc<Group>, batch: Arc<Batch>) {
    while !group.close_if_idle(&batch) {
        batch.idle.notified().await;
    }
    let mut slot = batch.slot.lock().await;
    slot.finished = true;
    let failed = slot.failed.take();
    let outcome = match (slot.txn.take(), failed) {
        (Some((txn, turn)), None) => {
            let committed = txn.commit().await.map_err(|e| e.to_string());
            drop(turn);
            committed
        }
        (Some((txn, turn)), Some(failed)) => {
            let _ = txn.rollback().await;
            drop(turn);
            Err(failed)
        }
        (None, Some(failed)) => Err(failed),
        (None, None) => Ok(()),
    };
    drop(slot);
    batch.done.send_replace(Some(outcome));
}
