//! The dispatcher: starts the fresh deliveries outboxes hand it, claims
//! the other due deliveries in batches, runs their attempts concurrently
//! (bounded in all and per webhook, so one hanging endpoint holds only its
//! own slots), and hands results to a writer that records them in batched
//! transactions.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Webhooks;
use super::attempt::{AttemptResult, Attempter};
use super::handoff::{Local, Ready, Slots};
use super::{claim, complete};
use crate::config::Settings;
use crate::outbound::{self, ClientOptions, OutboundError};
use crate::sealing::Keyring;

/// Most results written in one transaction.
const WRITE_BATCH: usize = 512;

pub struct Dispatcher {
    db: DatabaseConnection,
    settings: Arc<Settings>,
    webhooks: Webhooks,
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
        webhooks: Webhooks,
        keyring: Keyring,
    ) -> Result<Self, OutboundError> {
        let hooks = &settings.webhooks;
        let client = outbound::client(&ClientOptions {
            targets: outbound::Targets::from_settings(&settings),
            timeout: hooks.request_timeout(),
            user_agent: format!("wagate/{} (webhooks)", env!("CARGO_PKG_VERSION")),
            // Several webhooks may share a host; together they never run
            // more than this at once.
            idle_per_host: hooks.max_in_flight,
        })?;
        let attempter = Arc::new(Attempter {
            client,
            targets: outbound::Targets::from_settings(&settings),
            max_body: hooks.max_response_body_bytes,
        });
        Ok(Self {
            db,
            settings,
            webhooks,
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
        let notify = self.webhooks.notifier();
        // Bounded: when recording falls behind, finished attempts wait here
        // and hold their slots, so the dispatcher claims no faster than the
        // database records (results never pile up in memory).
        let (results_tx, results_rx) = mpsc::channel::<AttemptResult>(2 * WRITE_BATCH);
        let writer = tokio::spawn(writer(
            self.db.clone(),
            self.token,
            self.settings.clone(),
            results_rx,
            notify.clone(),
        ));
        let (handed_tx, mut handed) = mpsc::unbounded_channel::<Ready>();
        // Claims and hand-offs share one budget and one lease.
        let local = Arc::new(Local {
            token: self.token,
            lease: chrono::Duration::from_std(hooks.lease())
                .unwrap_or(chrono::Duration::seconds(60)),
            keyring: self.keyring.clone(),
            slots: Slots::new(hooks.max_in_flight, hooks.max_in_flight_per_webhook),
            jobs: handed_tx,
        });
        self.webhooks.lend(Some(local.clone()));
        let mut tasks: JoinSet<()> = JoinSet::new();
        tracing::info!(token = %self.token, "webhook dispatcher started");

        // An interval, not a sleep per wait: under a steady stream of
        // hand-offs a fresh sleep would never fire, and retries falling due
        // would wait for the stream to pause.
        let mut sweep = tokio::time::interval(hooks.sweep_interval());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_reclaim = tokio::time::Instant::now();
        // A lease runs out only when its dispatcher died or hung; looking a
        // few times per lease bounds the extra wait without scanning the
        // open deliveries every sweep.
        let reclaim_every = hooks.sweep_interval().max(hooks.lease() / 4);
        // Whether to run the claim query now, and whether a freed slot is
        // reason to (the last claim left due rows behind for want of slots).
        let mut look = true;
        let mut left_behind = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if tokio::time::Instant::now() >= next_reclaim {
                next_reclaim = tokio::time::Instant::now() + reclaim_every;
                match claim::reclaim_expired(&self.db, Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        look = true;
                        tracing::info!(reclaimed = n, "webhook deliveries with expired leases");
                    }
                    Err(e) => tracing::warn!(error = %e, "reclaiming expired webhook leases"),
                }
            }
            while let Ok(ready) = handed.try_recv() {
                self.start(ready, &mut tasks, &results_tx);
            }
            while tasks.try_join_next().is_some() {
                look |= left_behind;
            }
            if look {
                look = false;
                let want = local.slots.room().min(hooks.claim_batch);
                if want == 0 {
                    left_behind = true;
                } else {
                    match self
                        .claim_and_start(want, &local, &mut tasks, &results_tx)
                        .await
                    {
                        Ok(outcome) => {
                            left_behind = outcome.left_behind;
                            if outcome.claimed == want {
                                // More may be due right now.
                                look = true;
                                tokio::task::yield_now().await;
                                continue;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries"),
                    }
                }
            }
            tokio::select! {
                () = notify.notified() => look = true,
                Some(ready) = handed.recv() => self.start(ready, &mut tasks, &results_tx),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => look = left_behind,
                _ = sweep.tick() => look = true,
                changed = shutdown.changed() => {
                    // The sender gone means the server is gone: stop too.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }

        tracing::info!(in_flight = tasks.len(), "webhook dispatcher stopping");
        // Outboxes committed from now on leave their deliveries leased to
        // this token; the release below (or, for the last few, the lease)
        // brings them back.
        self.webhooks.lend(None);
        handed.close();
        while handed.recv().await.is_some() {}
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

    /// Runs one attempt in its slot and hands the result to the writer.
    fn start(
        &self,
        (job, slot): Ready,
        tasks: &mut JoinSet<()>,
        results: &mpsc::Sender<AttemptResult>,
    ) {
        let attempter = self.attempter.clone();
        let results = results.clone();
        tasks.spawn(async move {
            let result = attempter.run(job).await;
            // The writer outlives every attempt; a send fails only if it
            // died, and then the lease brings the delivery back.
            let _ = results.send(result).await;
            drop(slot);
        });
    }

    /// Claims up to `want` deliveries and starts their attempts.
    async fn claim_and_start(
        &self,
        want: usize,
        local: &Local,
        tasks: &mut JoinSet<()>,
        results: &mpsc::Sender<AttemptResult>,
    ) -> Result<Claimed, sea_orm::DbErr> {
        let saturated = local.slots.saturated();
        let now = Utc::now();
        let (claimed, jobs) = claim::claim_jobs(
            &self.db,
            &self.keyring,
            self.token,
            now,
            local.lease_until(now),
            want,
            &saturated,
        )
        .await?;
        let mut give_back = Vec::new();
        for job in jobs {
            // A hand-off may have taken the webhook's last slot meanwhile.
            match local.slots.take(job.webhook_id) {
                Some(slot) => self.start((job, slot), tasks, results),
                None => give_back.push(job.delivery_id),
            }
        }
        let left_behind = claimed == want || !saturated.is_empty() || !give_back.is_empty();
        if !give_back.is_empty() {
            claim::release(&self.db, self.token, Some(&give_back)).await?;
        }
        Ok(Claimed {
            claimed,
            left_behind,
        })
    }
}

struct Claimed {
    claimed: usize,
    /// Due deliveries may remain that only want a free slot.
    left_behind: bool,
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
        crate::metrics::attempts(&batch);
        if let Err(e) = complete::write_batch(&db, token, &settings.webhooks, &batch).await {
            // The deliveries stay claimed until their lease runs out, then
            // they are attempted again: at least once, never lost.
            tracing::error!(error = %e, results = batch.len(), "recording webhook attempts");
        }
        batch.clear();
        notify.notify_one();
    }
}
