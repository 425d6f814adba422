//! Periodic jobs on tokio-cron-scheduler, with each job's runs on record
//! for `GET /v1/admin/jobs`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("job `{job}` (setting {setting}): {source}")]
    Job {
        job: &'static str,
        setting: &'static str,
        source: JobSchedulerError,
    },
    #[error("scheduler: {0}")]
    Scheduler(#[from] JobSchedulerError),
    #[error("no job named `{0}`")]
    UnknownJob(String),
}

/// What is known of one job's runs.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: &'static str,
    pub schedule: String,
    pub runs: u64,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_duration: Option<Duration>,
    pub last_error: Option<String>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// The cluster node that ran it last, on a cluster.
    pub last_node: Option<Uuid>,
}

type JobFn = Arc<
    dyn Fn(AppState) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync,
>;

struct Entry {
    record: JobRecord,
    setting: &'static str,
    id: Option<Uuid>,
    run: JobFn,
}

/// The jobs and their records. Cheap to clone.
#[derive(Clone, Default)]
pub struct Jobs {
    entries: Arc<Mutex<BTreeMap<&'static str, Entry>>>,
    scheduler: Arc<tokio::sync::Mutex<Option<JobScheduler>>>,
}

impl Jobs {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts every job on its schedule.
    pub async fn start(&self, state: AppState) -> Result<(), SchedulerError> {
        let settings = state.settings.scheduler.clone();
        self.define(
            "reconnect",
            "scheduler.reconnect_cron",
            &settings.reconnect_cron,
            |s| {
                Box::pin(async move {
                    let cfg = &s.settings.scheduler;
                    s.sessions
                        .reconnect_stale(
                            Duration::from_secs(cfg.reconnect_after_secs),
                            Duration::from_secs(cfg.reconnect_backoff_max_secs),
                        )
                        .await
                        .map(|n| format!("started {n} client(s)"))
                        .map_err(|e| e.to_string())
                })
            },
        );
        self.define(
            "retention",
            "scheduler.retention_cron",
            &settings.retention_cron,
            |s| {
                Box::pin(async move {
                    crate::retention::purge(&s)
                        .await
                        .map(|n| format!("deleted {n} row(s)"))
                        .map_err(|e| e.to_string())
                })
            },
        );

        // Scheduled ticks only send the job's name; a task of the app runs it.
        // Capturing the state in the scheduler's closures would make a cycle
        // (state -> jobs -> scheduler -> closure -> state) that outlives the app.
        let (ticks, mut due) = tokio::sync::mpsc::channel::<&'static str>(16);
        let runner = self.clone();
        tokio::spawn(async move {
            while let Some(name) = due.recv().await {
                // On a cluster, the leader alone runs what spans every node.
                let follower = state
                    .sessions
                    .cluster()
                    .is_some_and(|c| !c.is_leader() && crate::cluster::jobs::cluster_wide(name));
                if !follower {
                    let _ = runner.run(name, state.clone()).await;
                }
            }
        });
        self.define(
            "webhook_sweep",
            "scheduler.webhook_sweep_cron",
            &settings.webhook_sweep_cron,
            |s| {
                Box::pin(async move {
                    // Deliveries whose dispatcher died or hung go back to
                    // pending, once for the whole deployment rather than in
                    // every dispatcher; then a dispatcher is told to look.
                    let reclaimed = crate::webhooks::claim::reclaim_expired(&s.db, Utc::now())
                        .await
                        .map_err(|e| e.to_string())?;
                    let due = crate::webhooks::ops::count_due(&s.db)
                        .await
                        .map_err(|e| e.to_string())?;
                    s.webhooks.wake();
                    Ok(format!(
                        "{due} delivery(ies) due, {reclaimed} with an expired lease given back"
                    ))
                })
            },
        );

        let scheduler = JobScheduler::new().await?;
        let defined: Vec<(&'static str, &'static str, String)> = self
            .entries()
            .values()
            .map(|e| (e.record.name, e.setting, e.record.schedule.clone()))
            .collect();
        for (name, setting, schedule) in defined {
            let ticks = ticks.clone();
            let job = Job::new_async(schedule.as_str(), move |_, _| {
                let ticks = ticks.clone();
                Box::pin(async move {
                    // A full queue means runs are already waiting: skip this tick.
                    let _ = ticks.try_send(name);
                })
            })
            .map_err(|source| SchedulerError::Job {
                job: name,
                setting,
                source,
            })?;
            let id = scheduler.add(job).await?;
            if let Some(e) = self.entries().get_mut(name) {
                e.id = Some(id);
            }
        }
        scheduler.start().await?;
        *self.scheduler.lock().await = Some(scheduler);
        Ok(())
    }

    fn define(
        &self,
        name: &'static str,
        setting: &'static str,
        schedule: &str,
        run: impl Fn(AppState) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync
        + 'static,
    ) {
        self.entries().insert(
            name,
            Entry {
                record: JobRecord {
                    name,
                    schedule: schedule.to_owned(),
                    runs: 0,
                    last_run_at: None,
                    last_duration: None,
                    last_error: None,
                    next_run_at: None,
                    last_node: None,
                },
                setting,
                id: None,
                run: Arc::new(run),
            },
        );
    }

    /// Runs a job now (as its schedule would), recording the run.
    pub async fn run(&self, name: &str, state: AppState) -> Result<JobRecord, SchedulerError> {
        let run = self
            .entries()
            .get(name)
            .map(|e| e.run.clone())
            .ok_or_else(|| SchedulerError::UnknownJob(name.to_owned()))?;
        let started_at = Utc::now();
        let clock = Instant::now();
        let span = tracing::info_span!("job", job = name);
        let cluster = state.sessions.cluster().cloned();
        let outcome = tracing::Instrument::instrument(run(state), span).await;
        crate::metrics::job_run(name, outcome.is_ok());
        if let Some(cluster) = &cluster {
            let last = crate::cluster::jobs::LastRun {
                node: cluster.node_id(),
                ran_at: started_at,
                duration: clock.elapsed(),
                error: outcome.as_ref().err().cloned(),
            };
            if let Err(e) = crate::cluster::jobs::record(cluster.db(), name, &last).await {
                tracing::warn!(job = name, error = %e, "could not record the run for the cluster");
            }
        }
        let mut entries = self.entries();
        let entry = entries
            .get_mut(name)
            .ok_or_else(|| SchedulerError::UnknownJob(name.to_owned()))?;
        let record = &mut entry.record;
        record.runs += 1;
        record.last_run_at = Some(started_at);
        record.last_duration = Some(clock.elapsed());
        record.last_node = cluster.map(|c| c.node_id());
        match outcome {
            Ok(summary) => {
                record.last_error = None;
                tracing::info!(job = name, %summary, "job ran");
            }
            Err(e) => {
                tracing::warn!(job = name, error = %e, "job failed");
                record.last_error = Some(e);
            }
        }
        Ok(record.clone())
    }

    /// Every job's record, with its next run; on a cluster, the last run
    /// is the latest on any node.
    pub async fn list(&self, cluster: Option<&crate::cluster::Cluster>) -> Vec<JobRecord> {
        let mut records = self.local_records().await;
        let Some(cluster) = cluster else {
            return records;
        };
        let runs = match crate::cluster::jobs::last_runs(cluster.db()).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the cluster's job runs");
                return records;
            }
        };
        for record in &mut records {
            if let Some(run) = runs.get(record.name)
                && record.last_run_at.is_none_or(|at| at < run.ran_at)
            {
                record.last_run_at = Some(run.ran_at);
                record.last_duration = Some(run.duration);
                record.last_error = run.error.clone();
                record.last_node = Some(run.node);
            }
        }
        records
    }

    async fn local_records(&self) -> Vec<JobRecord> {
        let mut records: Vec<(JobRecord, Option<Uuid>)> = self
            .entries()
            .values()
            .map(|e| (e.record.clone(), e.id))
            .collect();
        let mut scheduler = self.scheduler.lock().await;
        if let Some(s) = scheduler.as_mut() {
            for (record, id) in &mut records {
                if let Some(id) = id {
                    record.next_run_at = s.next_tick_for_job(*id).await.ok().flatten();
                }
            }
        }
        records.into_iter().map(|(r, _)| r).collect()
    }

    /// Stops the schedule; a run in progress finishes on its own.
    pub async fn shutdown(&self) {
        if let Some(mut s) = self.scheduler.lock().await.take()
            && let Err(e) = s.shutdown().await
        {
            tracing::warn!(error = %e, "stopping the scheduler");
        }
    }
}
