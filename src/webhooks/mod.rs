//! Webhooks: the event outbox, registrations, Standard Webhooks signing and
//! the dispatcher that delivers, retries and records every attempt.

pub mod adaptive;
pub mod attempt;
pub mod claim;
pub mod complete;
pub mod dispatcher;
pub mod due;
pub mod events;
pub mod group;
pub mod handoff;
pub mod lanes;
pub mod ops;
pub mod payload;
pub mod registry;
pub mod retry;
pub mod sequencer;
pub mod signing;
pub mod sink;
pub mod transport;

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub use events::{Audience, EventType, Outbox, record, record_for};
pub use registry::WebhookError;

/// The handle state-changing code holds: it records a transaction's events
/// through an [`Outbox`] and tells it when the transaction has committed, so
/// the dispatcher starts at once instead of at its next sweep. Cheap to clone.
#[derive(Clone, Default)]
pub struct Webhooks {
    notify: Arc<Notify>,
    /// What this process's running dispatcher lends to outboxes.
    local: Arc<Mutex<Option<Arc<handoff::Local>>>>,
    /// Tells open event streams about sequenced events.
    pub streams: crate::streams::Broadcaster,
    /// Wakes the sequencer after a commit.
    pub(crate) sequencer: sequencer::Signal,
    /// Shares SQLite's write lock among this process's small writers.
    pub(crate) group: Arc<group::Group>,
}

impl Webhooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the dispatcher. Never blocks; wakes are not lost if the
    /// dispatcher is busy (it looks again when it is done).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// An outbox for one transaction's events.
    pub fn outbox(&self) -> Outbox {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Outbox::new(self.clone(), local)
    }

    /// Runs `work` with an outbox in a write transaction, then tells the
    /// outbox it committed. Single-event transactions (the engine's) go
    /// through here: on SQLite several of them share one commit (see
    /// [`group`]). Returns once the transaction has committed.
    pub async fn write<T, F>(
        &self,
        db: &sea_orm::DatabaseConnection,
        work: F,
    ) -> Result<T, sea_orm::DbErr>
    where
        F: for<'a, 'b> AsyncFnOnce(
            &'a sea_orm::DatabaseTransaction,
            &'b mut Outbox,
        ) -> Result<T, sea_orm::DbErr>,
    {
        let mut outbox = self.outbox();
        let recording = &mut outbox;
        let value = self
            .transaction(db, async move |txn| work(txn, recording).await)
            .await?;
        outbox.committed();
        Ok(value)
    }

    /// [`Webhooks::write`] without the outbox: the caller records through
    /// its own and tells it after this returns.
    pub async fn transaction<T, F>(
        &self,
        db: &sea_orm::DatabaseConnection,
        work: F,
    ) -> Result<T, sea_orm::DbErr>
    where
        F: for<'a> AsyncFnOnce(&'a sea_orm::DatabaseTransaction) -> Result<T, sea_orm::DbErr>,
    {
        self.group.write(db, work).await
    }

    pub(crate) fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// The current in-flight limit of `webhook_id` in this process's
    /// dispatcher; `None` when no dispatcher runs here.
    pub fn concurrency_limit(&self, webhook_id: uuid::Uuid) -> Option<usize> {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner()).clone();
        local.map(|l| l.lanes.limit_of(webhook_id))
    }

    /// Set by the dispatcher while it runs.
    pub(crate) fn lend(&self, local: Option<Arc<handoff::Local>>) {
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = local;
    }
}
