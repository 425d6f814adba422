//! Cluster-wide jobs: which run only on the leader, and the record of who
//! ran each one last (`cluster_job_runs`), for `GET /v1/admin/jobs`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use super::pg;

/// Jobs that act on the whole deployment and so run on one node at a time.
/// The reconnect sweep is per node: each reconnects what it holds.
pub fn cluster_wide(job: &str) -> bool {
    job != "reconnect"
}

/// The last run of a job on any node.
#[derive(Debug, Clone)]
pub struct LastRun {
    pub node: Uuid,
    pub ran_at: DateTime<Utc>,
    pub duration: Duration,
    pub error: Option<String>,
}

pub async fn record(db: &DatabaseConnection, job: &str, run: &LastRun) -> Result<(), DbErr> {
    let ms = i64::try_from(run.duration.as_millis()).unwrap_or(i64::MAX);
    db.execute_raw(pg(
        "INSERT INTO cluster_job_runs (name, node_id, ran_at, duration_ms, error) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET node_id = EXCLUDED.node_id, \
           ran_at = EXCLUDED.ran_at, duration_ms = EXCLUDED.duration_ms, \
           error = EXCLUDED.error",
        vec![
            job.into(),
            run.node.into(),
            run.ran_at.into(),
            ms.into(),
            run.error.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

pub async fn last_runs(db: &DatabaseConnection) -> Result<HashMap<String, LastRun>, DbErr> {
    let rows = db
        .query_all_raw(pg(
            "SELECT name, node_id, ran_at, duration_ms, error FROM cluster_job_runs",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let ms: i64 = r.try_get("", "duration_ms")?;
            Ok((
                r.try_get("", "name")?,
                LastRun {
                    node: r.try_get("", "node_id")?,
                    ran_at: r.try_get("", "ran_at")?,
                    duration: Duration::from_millis(ms.max(0) as u64),
                    error: r.try_get("", "error")?,
                },
            ))
        })
        .collect()
}
