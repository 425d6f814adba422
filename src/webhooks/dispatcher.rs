//! The dispatcher: claims due deliveries in batches, runs their attempts
//! concurrently (bounded in all and per webhook, so one hanging endpoint
//! holds only its own slots), and hands results to a writer that records
//! them in batched transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::attempt::{AttemptResult, Attempter};
use super::{claim, complete};
use crate::config::Settings;
use crate::outbound::{self, ClientOptions, OutboundError};
use crate::sealing::Keyring;

/// Most results written in one transaction.
const WRITE_BATCH: usize = 512;

pub struct Dispatcher {
    db: DatabaseConnection,
    settings: Arc<Settings>,
    notify: Arc<Notify>,
    attempter: Arc<Attempter>,
    /// Opens the webhook secrets that sign each delivery.
    keyring: Keyring,
    /// This dispatcher's claims carry it, so its late results never
    /// overwrite a delivery another dispatcher reclaimed after a lease ran out.
    token: Uuid,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        notify: Arc<Notify>,
        keyring: Keyring,
    ) -> Result<Self, OutboundError> {
        let hooks = &settings.webhooks;
        let client = outbound::client(&ClientOptions {
            targets: outbound::Targets::from_settings(&settings),
            timeout: hooks.request_timeout(),
            user_agent: format!("wagate/{} (webhooks)", env!("CARGO_PKG_VERSION")),
        })?;
        let attempter = Arc::new(Attempter {
            client,
            targets: outbound::Targets::from_settings(&settings),
            max_body: hooks.max_response_body_bytes,
        });
        Ok(Self {
            db,
            settings,
            notify,
            attempter,
            keyring,
            token: Uuid::now_v7(),
        })
    }

    /// Runs until `shutdown` turns true, then stops claiming, lets attempts
    /// in flight finish within `grace`, records them and gives back the
    /// claims of any that did not.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let hooks = self.settings.webhooks.clone();
        // Bounded: when recording falls behind, finished attempts wait here
        // and hold their in-flight slots, so the dispatcher claims no faster
        // than the database records (results never pile up in memory).
        let (results_tx, results_rx) = mpsc::channel::<AttemptResult>(2 * WRITE_BATCH);
        let writer = tokio::spawn(writer(
            self.db.clone(),
            self.token,
            self.settings.clone(),
            results_rx,
            self.notify.clone(),
        ));
        let mut tasks: JoinSet<Uuid> = JoinSet::new();
        let mut per_webhook: HashMap<Uuid, usize> = HashMap::new();
        tracing::info!(token = %self.token, "webhook dispatcher started");

        let mut next_reclaim = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if tokio::time::Instant::now() >= next_reclaim {
                next_reclaim = tokio::time::Instant::now() + hooks.sweep_interval();
                match claim::reclaim_expired(&self.db, Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(reclaimed = n, "webhook deliveries with expired leases")
                    }
                    Err(e) => tracing::warn!(error = %e, "reclaiming expired webhook leases"),
                }
            }
            while let Some(done) = tasks.try_join_next() {
                finished(&mut per_webhook, done);
            }
            let room = hooks.max_in_flight.saturating_sub(tasks.len());
            let mut full_batch = false;
            if room > 0 {
                let want = room.min(hooks.claim_batch);
                match self
                    .claim_and_start(want, &mut tasks, &mut per_webhook, &results_tx)
                    .await
                {
                    Ok(claimed) => full_batch = claimed == want,
                    Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries"),
                }
            }
            if full_batch {
                // More may be due right now.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = self.notify.notified() => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    finished(&mut per_webhook, done);
                }
                () = tokio::time::sleep(hooks.sweep_interval()) => {}
                changed = shutdown.changed() => {
                    // The sender gone means the server is gone: stop too.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }

        tracing::info!(in_flight = tasks.len(), "webhook dispatcher stopping");
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
        }
        drop(results_tx);
        if writer.await.is_err() {
            tracing::warn!("webhook result writer failed");
        }
        match claim::release(&self.db, self.token, None).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "gave back unfinished webhook deliveries"),
            Err(e) => tracing::warn!(error = %e, "giving back webhook deliveries"),
        }
        tracing::info!("webhook dispatcher stopped");
    }

    /// Claims up to `want` deliveries and starts their attempts. Returns how
    /// many rows were claimed.
    async fn claim_and_start(
        &self,
        want: usize,
        tasks: &mut JoinSet<Uuid>,
        per_webhook: &mut HashMap<Uuid, usize>,
        results: &mpsc::Sender<AttemptResult>,
    ) -> Result<usize, sea_orm::DbErr> {
        let limit = self.settings.webhooks.max_in_flight_per_webhook;
        let saturated: Vec<Uuid> = per_webhook
            .iter()
            .filter(|(_, n)| **n >= limit)
            .map(|(id, _)| *id)
            .collect();
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.settings.webhooks.lease())
            .unwrap_or(chrono::Duration::seconds(60));
        let (claimed, jobs) = claim::claim_jobs(
            &self.db,
            &self.keyring,
            self.token,
            now,
            now + lease,
            want,
            &saturated,
        )
        .await?;
        let mut give_back = Vec::new();
        for job in jobs {
            let n = per_webhook.entry(job.webhook_id).or_default();
            if *n >= limit {
                give_back.push(job.delivery_id);
                continue;
            }
            *n += 1;
            let attempter = self.attempter.clone();
            let results = results.clone();
            tasks.spawn(async move {
                let webhook_id = job.webhook_id;
                let result = attempter.run(job).await;
                // The writer outlives every attempt; a send fails only if
                // it died, and then the lease brings the delivery back.
                let _ = results.send(result).await;
                webhook_id
            });
        }
        if !give_back.is_empty() {
            claim::release(&self.db, self.token, Some(&give_back)).await?;
        }
        Ok(claimed)
    }
}

fn finished(per_webhook: &mut HashMap<Uuid, usize>, done: Result<Uuid, tokio::task::JoinError>) {
    let Ok(webhook_id) = done else {
        return;
    };
    if let Some(n) = per_webhook.get_mut(&webhook_id) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_webhook.remove(&webhook_id);
        }
    }
}

/// Drains results in batches into single transactions, then wakes the
/// dispatcher: an ordered webhook's next delivery, or an `endpoint.disabled`
/// event, may now be due.
async fn writer(
    db: DatabaseConnection,
    token: Uuid,
    settings: Arc<Settings>,
    mut rx: mpsc::Receiver<AttemptResult>,
    notify: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        if let Err(e) = complete::write_batch(&db, token, &settings.webhooks, &batch).await {
            // The deliveries stay claimed until their lease runs out, then
            // they are attempted again: at least once, never lost.
            tracing::error!(error = %e, results = batch.len(), "recording webhook attempts");
        }
        batch.clear();
        notify.notify_one();
    }
}
