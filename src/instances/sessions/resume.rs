//! Bringing stored sessions back: after a start, on a cluster node's
//! claims, and when the reconnect sweep finds one disconnected too long.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use entity::instances::{Column, Entity, Status};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::{Backoff, SessionError, Sessions};
use crate::instances::store;

impl Sessions {
    /// Reconnects every paired instance after a start, `concurrency` at a
    /// time with a little jitter. Progress is logged and kept for `/readyz`.
    pub async fn resume_all(&self, concurrency: usize) -> Result<usize, SessionError> {
        let paired = self.ids_in(Status::Disconnected).await?;
        let total = paired.len();
        self.resume(paired, concurrency).await;
        self.mark_resumed();
        Ok(total)
    }

    /// Says the start-up reconnect is over, for `/readyz`.
    pub fn mark_resumed(&self) {
        self.inner.progress.finished.store(true, Ordering::Relaxed);
    }

    /// Starts a client for each of `ids`, `concurrency` at a time; returns
    /// once each is online, has failed or has had `answer_timeout`.
    pub async fn resume(&self, ids: Vec<Uuid>, concurrency: usize) {
        let progress = &self.inner.progress;
        progress.total.fetch_add(ids.len(), Ordering::Relaxed);
        let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
            let this = self.clone();
            let permit = semaphore.clone().acquire_owned().await;
            tasks.spawn(async move {
                let _permit = permit;
                // Spreads the sockets of one batch over a moment.
                let jitter = Duration::from_millis(u64::from(id.as_bytes()[15]) % 250);
                tokio::time::sleep(jitter).await;
                // The permit is held until the client is online (or gives up
                // for now), so the bound counts handshakes, not just starts.
                match this.ensure_started(id).await {
                    Ok(mut rx) => {
                        let settled = rx.wait_for(|p| p.online || p.failure.is_some());
                        if tokio::time::timeout(this.inner.answer_timeout, settled)
                            .await
                            .is_err()
                        {
                            tracing::info!(instance_id = %id, "still connecting; moving on");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(instance_id = %id, error = %e, "could not resume a session");
                    }
                }
                let progress = &this.inner.progress;
                let done = progress.done.fetch_add(1, Ordering::Relaxed) + 1;
                let total = progress.total.load(Ordering::Relaxed);
                if done == total || done.is_multiple_of(100) {
                    tracing::info!("reconnected {done}/{total}");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Starts a client for every paired instance that has been disconnected
    /// for `after` with no client running (a running client retries by
    /// itself). An instance whose start fails waits 30 s, doubling per
    /// failure up to `max_backoff`, with its last error recorded.
    pub async fn reconnect_stale(
        &self,
        after: Duration,
        max_backoff: Duration,
    ) -> Result<usize, SessionError> {
        let cutoff = Utc::now() - chrono::Duration::from_std(after).unwrap_or_default();
        let stale: Vec<Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Status.eq(Status::Disconnected))
            .filter(Column::UpdatedAt.lte(cutoff))
            .into_tuple::<Uuid>()
            .all(&self.inner.db)
            .await?;
        let now = std::time::Instant::now();
        let mut started = 0;
        for id in stale {
            let waiting = self
                .inner
                .backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .is_some_and(|b| b.next_try > now);
            // In a cluster, only what this node holds; the others
            // reconnect theirs.
            let elsewhere = self.inner.cluster.get().is_some_and(|c| !c.holds(id));
            if waiting || elsewhere || self.live().contains_key(&id) {
                continue;
            }
            crate::metrics::reconnect_attempt();
            match self.ensure_started(id).await {
                Ok(_) => started += 1,
                Err(e) => {
                    let wait = {
                        let mut backoff =
                            self.inner.backoff.lock().unwrap_or_else(|p| p.into_inner());
                        let entry = backoff.entry(id).or_insert(Backoff {
                            failures: 0,
                            next_try: now,
                        });
                        // 30 s, 60 s, 120 s, ... up to the cap.
                        let wait = Duration::from_secs(30)
                            .saturating_mul(1 << (entry.failures.min(16)))
                            .min(max_backoff);
                        entry.failures += 1;
                        entry.next_try = now + wait;
                        wait
                    };
                    tracing::warn!(instance_id = %id, error = %e, ?wait, "reconnect failed");
                    store::record_error(&self.inner.db, id, &format!("reconnect failed: {e}"))
                        .await?;
                }
            }
        }
        Ok(started)
    }
}
