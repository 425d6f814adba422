//! `/v1/admin`: the scheduled jobs, their last runs and running one now;
//! the cluster's nodes.

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use crate::scheduler::{JobRecord, SchedulerError};
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Job")]
pub struct JobView {
    pub name: String,
    /// Cron expression (six fields, seconds first, UTC).
    pub schedule: String,
    pub runs: u64,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<f64>,
    /// The last run's error; absent when it succeeded.
    pub last_error: Option<String>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// On a cluster: the node that ran it last.
    pub last_node: Option<uuid::Uuid>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        Self {
            name: r.name.to_owned(),
            schedule: r.schedule,
            runs: r.runs,
            last_run_at: r.last_run_at,
            last_duration_ms: r.last_duration.map(|d| d.as_secs_f64() * 1000.0),
            last_error: r.last_error,
            next_run_at: r.next_run_at,
            last_node: r.last_node,
        }
    }
}

pub struct AdminApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/v1/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// List jobs
    #[oai(path = "/jobs", method = "get", operation_id = "list_jobs")]
    async fn list(&self, auth: Auth) -> Result<Json<Vec<JobView>>, ApiError> {
        auth.admin()?;
        Ok(Json(
            self.state
                .jobs
                .list(self.state.sessions.cluster())
                .await
                .into_iter()
                .map(Into::into)
                .collect(),
        ))
    }

    /// List cluster nodes
    ///
    /// Every node registered on this database, with how many instances it
    /// holds under a live lease and whether it leads the cluster-wide jobs.
    /// On SQLite (one node) or with `cluster.enabled = false`, `cluster` is
    /// false and the list is empty.
    #[oai(path = "/nodes", method = "get", operation_id = "list_nodes")]
    async fn nodes(&self, auth: Auth) -> Result<Json<super::admin_nodes::NodesView>, ApiError> {
        auth.admin()?;
        super::admin_nodes::list(&self.state).await.map(Json)
    }

    /// Run a job now
    ///
    /// Runs it once, outside its schedule, and returns its record.
    #[oai(path = "/jobs/:name/run", method = "post", operation_id = "run_job")]
    async fn run(&self, auth: Auth, name: Path<String>) -> Result<Json<JobView>, ApiError> {
        auth.admin()?;
        match self.state.jobs.run(&name.0, self.state.clone()).await {
            Ok(record) => Ok(Json(record.into())),
            Err(e @ SchedulerError::UnknownJob(_)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "job_not_found",
                e.to_string(),
            )),
            Err(e) => Err(ApiError::internal(&e)),
        }
    }
}
