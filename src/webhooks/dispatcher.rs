//! The dispatcher: queues the fresh deliveries outboxes hand it, claims
//! the other due deliveries as far as their webhooks have room, runs their
//! attempts concurrently (bounded in all, and per webhook by an adaptive
//! limit, so one hanging endpoint holds only its own share), and hands
//! results to a writer that records them in batched transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use uuid::Uuid;

use super::Webhooks;
use super::attempt::{AttemptResult, Attempter, Verdict};
use super::group::Group;
use super::handoff::{Local, Ready};
use super::lanes::Lanes;
use super::transport::{amqp::Amqp, http::Http, nats::Nats};
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
        let targets = outbound::Targets::from_settings(&settings);
        let attempter = Arc::new(Attempter {
            http: Http {
                client,
                targets: targets.clone(),
                max_body: hooks.max_response_body_bytes,
            },
            nats: Nats::new(targets.clone(), hooks.request_timeout()),
            amqp: Amqp::new(targets, hooks.request_timeout()),
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
    /// claims of any that did not (and of deliveries still queued).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let hooks = self.settings.webhooks.clone();
        let notify = self.webhooks.notifier();
        // Bounded: when recording falls behind, finished attempts wait here
        // within the dispatcher-wide budget, so the dispatcher starts no
        // faster than the database records (results never pile up).
        let (results_tx, results_rx) = mpsc::channel::<AttemptResult>(2 * WRITE_BATCH);
        let writer = tokio::spawn(writer(
            self.db.clone(),
            self.webhooks.group.clone(),
            self.token,
            self.settings.clone(),
            results_rx,
            notify.clone(),
        ));
        let (handed_tx, mut handed) = mpsc::unbounded_channel::<Ready>();
        let lanes = Lanes::new(&hooks);
        // Claims and hand-offs share the lanes and one lease.
        let local = Arc::new(Local {
            token: self.token,
            lease: chrono::Duration::from_std(hooks.lease())
                .unwrap_or(chrono::Duration::seconds(60)),
            keyring: self.keyring.clone(),
            lanes: lanes.clone(),
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
        // Whether to run the claim query now, and whether the last one was
        // cut short by the dispatcher-wide budget (then freed room is a
        // reason to look again).
        let mut look = true;
        let mut starved = false;
        // The claim query runs beside the loop: hand-offs arriving while it
        // waits on the database start at once instead of queueing behind it.
        let mut claiming: Option<JoinHandle<Result<Claim, sea_orm::DbErr>>> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Ok((job, ticket)) = handed.try_recv() {
                lanes.handed(job, ticket);
            }
            while tasks.try_join_next().is_some() {}
            if look && claiming.is_none() {
                look = false;
                claiming = Some(tokio::spawn(claim_due(
                    self.db.clone(),
                    self.webhooks.group.clone(),
                    local.clone(),
                    hooks.claim_batch,
                )));
            }
            self.start_ready(&lanes, &mut tasks, &results_tx).await;
            tokio::select! {
                Some(done) = finished(&mut claiming) => {
                    claiming = None;
                    match done {
                        Ok(Ok(claim)) => {
                            starved = claim.full;
                            // More may be due right now.
                            look |= claim.full && claim.claimed > 0;
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "claiming webhook deliveries"),
                        Err(e) => tracing::error!(error = %e, "the webhook claim task failed"),
                    }
                }
                () = notify.notified() => look = true,
                Some((job, ticket)) = handed.recv() => lanes.handed(job, ticket),
                () = lanes.kicked() => {
                    look |= (starved && lanes.total_has_room()) || lanes.backlog_has_room();
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = sweep.tick() => look = true,
                changed = shutdown.changed() => {
                    // The sender gone means the server is gone: stop too.
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        // What a claim in flight takes is released below with the rest.
        if let Some(claim) = claiming
            && let Ok(Err(e)) = claim.await
        {
            tracing::warn!(error = %e, "claiming webhook deliveries");
        }

        tracing::info!(in_flight = tasks.len(), "webhook dispatcher stopping");
        // Outboxes committed from now on leave their deliveries leased to
        // this token; the release below (or, for the last few, the lease)
        // brings them back, with those still queued.
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

    /// Starts what the lanes let start; gives back what waited too long.
    async fn start_ready(
        &self,
        lanes: &Arc<Lanes>,
        tasks: &mut JoinSet<()>,
        results: &mpsc::Sender<AttemptResult>,
    ) {
        let (ready, give_back) = lanes.startable();
        for (job, running) in ready {
            let attempter = self.attempter.clone();
            let results = results.clone();
            tasks.spawn(async move {
                let mut running = running;
                let result = attempter.run(job).await;
                running.finished(&result);
                // The writer outlives every attempt; a send fails only if it
                // died, and then the lease brings the delivery back.
                let _ = results.send(result).await;
                drop(running);
            });
        }
        if !give_back.is_empty() {
            let turn = self.webhooks.group.turn(&self.db).await;
            let released = claim::release(&self.db, self.token, Some(&give_back)).await;
            drop(turn);
            match released {
                Ok(n) => tracing::debug!(released = n, "queued webhook deliveries given back"),
                Err(e) => tracing::warn!(error = %e, "giving back queued webhook deliveries"),
            }
        }
    }
}

/// Claims what the lanes have room for and queues it to start.
async fn claim_due(
    db: DatabaseConnection,
    group: Arc<Group>,
    local: Arc<Local>,
    batch: usize,
) -> Result<Claim, sea_orm::DbErr> {
    let mut rooms = local.lanes.rooms();
    rooms.total = rooms.total.min(batch);
    rooms.candidates = batch;
    if rooms.total == 0 {
        return Ok(Claim {
            claimed: 0,
            full: true,
        });
    }
    let turn = group.turn(&db).await;
    let now = Utc::now();
    let (claimed, jobs) = claim::claim_jobs(
        &db,
        &local.keyring,
        local.token,
        now,
        local.lease_until(now),
        &rooms,
    )
    .await?;
    drop(turn);
    let mut per_webhook: HashMap<Uuid, usize> = HashMap::new();
    for job in &jobs {
        *per_webhook.entry(job.webhook_id).or_default() += 1;
    }
    local.lanes.claimed(jobs);
    local.lanes.after_claim(&rooms, &per_webhook);
    Ok(Claim {
        claimed,
        full: claimed >= rooms.total,
    })
}

/// The claim in flight's outcome; pending while there is none.
async fn finished<T>(claiming: &mut Option<JoinHandle<T>>) -> Option<Result<T, JoinError>> {
    match claiming {
        Some(handle) => Some(handle.await),
        None => std::future::pending().await,
    }
}

struct Claim {
    claimed: usize,
    /// The dispatcher-wide room was the limit: more may be due.
    full: bool,
}

/// Drains results in batches into single transactions, then wakes the
/// dispatcher when an ordered webhook's next delivery, more of a backlog,
/// or an `endpoint.disabled` event may now be due.
async fn writer(
    db: DatabaseConnection,
    group: Arc<Group>,
    token: Uuid,
    settings: Arc<Settings>,
    mut rx: mpsc::Receiver<AttemptResult>,
    notify: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        crate::metrics::attempts(&batch);
        let turn = group.turn(&db).await;
        let written = complete::write_batch(&db, token, &settings.webhooks, &batch).await;
        drop(turn);
        if let Err(e) = written {
            // The deliveries stay claimed until their lease runs out, then
            // they are attempted again: at least once, never lost.
            tracing::error!(error = %e, results = batch.len(), "recording webhook attempts");
        }
        // Only a result that can make another delivery due asks for a
        // claim: a claimed one (an ordered webhook's next, or more of a
        // backlog) or one that did not succeed. Waking for every hand-off
        // would run the claim query per batch, and hand-offs wait while it runs.
        let due_next = batch
            .iter()
            .any(|r| !r.job.handed_off || !matches!(r.verdict, Verdict::Succeeded));
        batch.clear();
        if due_next {
            notify.notify_one();
        }
    }
}
