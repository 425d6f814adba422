//! Pairing and logout: `/v1/instances/{id}/login`, `/qr`, `/pair-code`,
//! `/logout`.

use chrono::{DateTime, Utc};
use poem::http::{StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::instances::{InstanceStatus, InstanceView};
use super::qr_image;
use super::text::Text;
use crate::access::Scope;
use crate::instances::sessions::{Qr, SessionError};
use crate::messaging::phone;
use crate::state::AppState;

/// A QR code to scan with WhatsApp on the phone (Linked devices).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QrView {
    /// The raw QR payload; render it yourself, or use `data_url`.
    pub code: String,
    /// When WhatsApp stops accepting this code; a new one follows.
    pub expires_at: DateTime<Utc>,
    /// Which code of this pairing this is (1 to 6).
    pub attempt: u32,
    /// The code as a PNG image in a data URL.
    pub data_url: String,
}

impl QrView {
    fn new(qr: Qr) -> Result<Self, ApiError> {
        let data_url = qr_image::data_url(&qr.code).map_err(|e| ApiError::internal(&e))?;
        Ok(Self {
            code: qr.code,
            expires_at: qr.expires_at,
            attempt: qr.attempt,
            data_url,
        })
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LoginView {
    pub status: InstanceStatus,
    /// Present while a QR code waits to be scanned; absent when the instance
    /// resumed a stored session instead.
    pub qr: Option<QrView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum QrFormat {
    Json,
    Png,
}

/// JSON by default; a PNG image for `format=png` or `Accept: image/png`.
pub enum QrResponse {
    Json(QrView),
    Png(Vec<u8>),
}

impl IntoResponse for QrResponse {
    fn into_response(self) -> Response {
        match self {
            QrResponse::Json(view) => poem::web::Json(view.to_json()).into_response(),
            QrResponse::Png(bytes) => Response::builder()
                .status(StatusCode::OK)
                .header(header::CACHE_CONTROL, "no-store")
                .content_type("image/png")
                .body(bytes),
        }
    }
}

impl ApiResponse for QrResponse {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The QR code on show, as JSON or as a PNG image.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: QrView::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: "image/png",
                        schema: <poem_openapi::types::Binary<Vec<u8>> as Type>::schema_ref(),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        QrView::register(registry);
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct PairCodeRequest {
    /// The phone's number in international form, e.g. `+62 812 3456 7890`.
    #[oai(validator(max_length = 32, pattern = r"^\+?[0-9][0-9 ().-]{6,30}$"))]
    pub phone_number: Text,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PairCodeView {
    /// Type this into WhatsApp on the phone: Linked devices, Link with phone
    /// number instead.
    pub code: String,
    /// The number it was issued for, as E.164 digits.
    pub phone_number: String,
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        let detail = err.to_string();
        match err {
            SessionError::Instance(e) => e.into(),
            SessionError::LoggedOut(_) => {
                Self::new(StatusCode::GONE, "instance_logged_out", detail)
            }
            SessionError::AlreadyOnline(_) => {
                Self::new(StatusCode::CONFLICT, "instance_online", detail)
            }
            SessionError::NotPaired(_) => {
                Self::new(StatusCode::CONFLICT, "instance_not_paired", detail)
            }
            SessionError::NoQr(_) => Self::new(StatusCode::NOT_FOUND, "qr_not_available", detail),
            SessionError::PairingFailed(_) => {
                Self::new(StatusCode::CONFLICT, "pairing_failed", detail)
            }
            SessionError::Timeout(_) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "whatsapp_timeout", detail)
            }
            SessionError::Engine(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", detail)
            }
            SessionError::Db(e) => e.into(),
            SessionError::Cluster(crate::cluster::ClusterError::OwnedElsewhere { .. }) => {
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "instance_unavailable",
                    detail,
                )
                .retry_after(std::time::Duration::from_secs(5))
            }
            SessionError::Cluster(crate::cluster::ClusterError::Db(e)) => e.into(),
        }
    }
}

pub struct PairingApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/v1/instances", tag = "ApiTags::Pairing")]
impl PairingApi {
    /// Start pairing
    ///
    /// Starts a WhatsApp client for the instance and returns the first QR
    /// code to scan. An instance that was paired before reconnects from its
    /// stored session instead, without a QR code. 409 when online, 410 when
    /// logged out.
    #[oai(path = "/:id/login", method = "post", operation_id = "login")]
    async fn login(&self, auth: Auth, id: Path<Uuid>) -> Result<Json<LoginView>, ApiError> {
        auth.instance(id.0, Scope::Manage)?;
        let (instance, pairing) = self.state.sessions.login(id.0).await?;
        let qr = pairing.qr.map(QrView::new).transpose()?;
        Ok(Json(LoginView {
            status: instance.status.into(),
            qr,
        }))
    }

    /// Current QR code
    ///
    /// The code on show while pairing: JSON (raw code, expiry, attempt, data
    /// URL), or a PNG image with `format=png` or `Accept: image/png`. Codes
    /// rotate; `instance.qr` webhooks announce each new one.
    #[oai(path = "/:id/qr", method = "get", operation_id = "get_qr")]
    async fn qr(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        format: Query<Option<QrFormat>>,
        accept: Header<Option<String>>,
    ) -> Result<QrResponse, ApiError> {
        auth.instance(id.0, Scope::Manage)?;
        let qr = self.state.sessions.qr(id.0).await?;
        let wants_png = match format.0 {
            Some(f) => f == QrFormat::Png,
            None => accept.0.as_deref().is_some_and(|a| a.contains("image/png")),
        };
        if wants_png {
            let png = qr_image::png(&qr.code).map_err(|e| ApiError::internal(&e))?;
            return Ok(QrResponse::Png(png));
        }
        Ok(QrResponse::Json(QrView::new(qr)?))
    }

    /// Pair with a code
    ///
    /// Returns an 8-character code to type on the phone instead of scanning
    /// a QR code.
    #[oai(path = "/:id/pair-code", method = "post", operation_id = "pair_code")]
    async fn pair_code(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PairCodeRequest>,
    ) -> Result<Json<PairCodeView>, ApiError> {
        auth.instance(id.0, Scope::Manage)?;
        let number = phone::normalize(&body.0.phone_number, None).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_phone_number",
                format!("phone_number: {e}"),
            )
        })?;
        let code = self.state.sessions.pair_code(id.0, &number).await?;
        Ok(Json(PairCodeView {
            code,
            phone_number: number,
        }))
    }

    /// Log out
    ///
    /// Unlinks the device from the phone, wipes its keys and marks the
    /// instance `logged_out`, which is final: create a new instance to pair
    /// again.
    #[oai(path = "/:id/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: Auth, id: Path<Uuid>) -> Result<Json<InstanceView>, ApiError> {
        auth.instance(id.0, Scope::Manage)?;
        let instance = self.state.sessions.logout(id.0).await?;
        Ok(Json(instance.into()))
    }
}
