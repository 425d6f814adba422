//! `GET /metrics` in Prometheus text format (admin key), the same without a
//! key for the separate `metrics.listen` address, and the middleware that
//! counts every HTTP request by its route template.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::spec::Methods;
use crate::state::AppState;

/// Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(ApiResponse)]
pub enum Exposition {
    /// The metrics in Prometheus text format (version 0.0.4).
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

pub struct MetricsApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::System")]
impl MetricsApi {
    /// Prometheus metrics
    ///
    /// Instances by status, connects and disconnects, sends, inbound
    /// messages, webhook deliveries and backlog, HTTP requests, the database
    /// pool and scheduled jobs. Admin key only; `metrics.listen` serves the
    /// same without a key on a separate address.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, auth: Auth) -> Result<Exposition, ApiError> {
        auth.admin()?;
        Ok(Exposition::Ok(PlainText(
            crate::metrics::render(&self.state.db).await,
        )))
    }
}

/// The unauthenticated scrape endpoint for `metrics.listen`.
pub fn open_endpoint(state: AppState) -> impl Endpoint {
    poem::Route::new().at(
        "/metrics",
        poem::get(poem::endpoint::make(move |_| {
            let db = state.db.clone();
            async move {
                poem::Response::builder()
                    .content_type(CONTENT_TYPE)
                    .body(crate::metrics::render(&db).await)
            }
        })),
    )
}

/// Counts the request under its route template (`other` for paths outside
/// the API document, so unknown paths cannot grow the label set).
pub async fn track<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .data::<Methods>()
        .and_then(|m| m.template(req.uri().path()))
        .unwrap_or_else(|| "other".to_owned());
    let result = next.call(req).await.map(IntoResponse::into_response);
    let status = match &result {
        Ok(resp) => resp.status(),
        Err(err) => err.status(),
    };
    crate::metrics::http(method.as_str(), route, status.as_u16(), started.elapsed());
    result
}
