//! The one error type at the edge: every failure leaves as RFC 9457
//! `application/problem+json` with a stable `code`.

use poem::error::{MethodNotAllowedError, NotFoundError};
use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::{
    AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
    ParseRequestPayloadError,
};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};
use sea_orm::DbErr;

use crate::instances::InstanceError;
use crate::webhooks::WebhookError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 problem details, with a machine-readable `code`.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:wagate:problem:<code>`.
    #[oai(rename = "type")]
    pub type_: String,
    /// A short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Stable, machine-readable error code, e.g. `instance_not_found`.
    pub code: String,
    /// What went wrong in this request, for a person.
    pub detail: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// Adds `Retry-After` (whole seconds, at least 1).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`",
        )
    }

    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; see its log",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    fn problem(&self) -> Problem {
        Problem {
            type_: format!("urn:wagate:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail.clone(),
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                tracing::error!(error = %err, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database cannot be reached; try again later",
                )
            }
            other => Self::internal(&other),
        }
    }
}

impl From<InstanceError> for ApiError {
    fn from(err: InstanceError) -> Self {
        match err {
            InstanceError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "instance_not_found", err.to_string())
            }
            InstanceError::Online(_) => {
                Self::new(StatusCode::CONFLICT, "instance_online", err.to_string())
            }
            InstanceError::Db(e) => e.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        let detail = err.to_string();
        match err {
            WebhookError::InstanceNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "instance_not_found", detail)
            }
            WebhookError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "webhook_not_found", detail)
            }
            WebhookError::DeliveryNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "delivery_not_found", detail)
            }
            WebhookError::InvalidUrl(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_url", detail)
            }
            WebhookError::UrlNotAllowed(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "url_not_allowed", detail)
            }
            WebhookError::InvalidTarget(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target", detail)
            }
            WebhookError::KindMismatch(_) => {
                Self::new(StatusCode::CONFLICT, "kind_mismatch", detail)
            }
            WebhookError::UnknownEventType(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_event_type",
                detail,
            ),
            WebhookError::Signing(e) => Self::internal(&e),
            WebhookError::Sealing(e) => Self::internal(&e),
            WebhookError::Db(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match serde_json::to_vec(&self.problem().to_json()) {
            Ok(body) => body,
            Err(_) => b"{}".to_vec(),
        };
        let mut resp = Response::builder()
            .status(self.status)
            .content_type(PROBLEM_JSON)
            .body(body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"wagate\""),
            );
        }
        resp
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

/// The statuses any operation may answer with a problem document.
const DOCUMENTED: &[(u16, &str)] = &[
    (400, "Malformed path or query parameter."),
    (401, "Missing or invalid API key."),
    (403, "The API key may not do this (scope, or admin only)."),
    (404, "The resource does not exist."),
    (409, "The resource is in a state that forbids the request."),
    (410, "The instance is logged out for good."),
    (413, "The request body or media file is too large."),
    (415, "The request body has the wrong content type."),
    (422, "The request body is malformed or fails validation."),
    (429, "Too many requests with this key; see Retry-After."),
    (500, "The server failed; details are in its log."),
    (502, "WhatsApp could not be reached or refused."),
    (503, "A dependency (the database) is unavailable."),
    (504, "WhatsApp did not answer in time."),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_JSON,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Turns the framework's own errors (unparsable parameters and bodies, unknown
/// routes, failed authentication) into problem documents; errors that already
/// are problems pass through untouched.
pub async fn problem_middleware<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    // RFC 9110: a 405 names the methods the route does accept.
    let allow = req
        .data::<super::spec::Methods>()
        .and_then(|m| m.allow(req.uri().path()));
    match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) => {
            let mut resp = problem_from(err);
            if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                && let Some(value) = allow.and_then(|a| header::HeaderValue::from_str(&a).ok())
            {
                resp.headers_mut().insert(header::ALLOW, value);
            }
            Ok(resp)
        }
    }
}

fn problem_from(err: poem::Error) -> Response {
    let detail = err.to_string();
    let mapped = if err.is::<ParseParamError>() || err.is::<ParsePathError>() {
        Some(ApiError::bad_request("invalid_parameter", detail))
    } else if err.is::<ParseRequestPayloadError>()
        || err.is::<ParseMultipartError>()
        || err.is::<poem::error::ParseMultipartError>()
    {
        Some(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            detail,
        ))
    } else if err.is::<ContentTypeError>() {
        Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            detail,
        ))
    } else if err.is::<AuthorizationError>() {
        Some(ApiError::unauthorized())
    } else if err.is::<NotFoundError>() {
        Some(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route",
        ))
    } else if err.is::<MethodNotAllowedError>() {
        Some(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the route does not accept this method",
        ))
    } else {
        None
    };
    if let Some(mapped) = mapped {
        return mapped.into_response();
    }
    let resp = err.into_response();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem || !resp.status().is_client_error() && !resp.status().is_server_error() {
        return resp;
    }
    let status = resp.status();
    ApiError::new(
        status,
        "request_failed",
        status.canonical_reason().unwrap_or("error"),
    )
    .into_response()
}
