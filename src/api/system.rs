//! Liveness and readiness probes; no key needed.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::error::Problem;
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum Readiness {
    /// The database answers and is fully migrated.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// Not ready; `detail` says why.
    #[oai(status = 503, content_type = "application/problem+json")]
    NotReady(Json<Problem>),
}

pub struct SystemApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when the database is reachable and migrated, else 503.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Readiness {
        let progress = self.state.sessions.resume_progress();
        let resuming = !progress.finished.load(std::sync::atomic::Ordering::Relaxed);
        let checked = match crate::db::check_ready(&self.state.db).await {
            Ok(()) if resuming && self.state.settings.scheduler.not_ready_while_resuming => {
                Err(format!(
                    "reconnecting stored sessions: {}/{}",
                    progress.done.load(std::sync::atomic::Ordering::Relaxed),
                    progress.total.load(std::sync::atomic::Ordering::Relaxed)
                ))
            }
            other => other,
        };
        match checked {
            Ok(()) => Readiness::Ready(Json(Health {
                status: "ready".into(),
            })),
            Err(reason) => {
                tracing::warn!(%reason, "not ready");
                Readiness::NotReady(Json(Problem {
                    type_: "urn:wagate:problem:not_ready".into(),
                    title: "Service Unavailable".into(),
                    status: 503,
                    code: "not_ready".into(),
                    detail: reason,
                }))
            }
        }
    }
}
