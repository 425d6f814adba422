//! Sending by the sender's number: the seed routes, served under `/v1` and,
//! through `Unversioned`, at their original paths.

use poem::http::StatusCode;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::send_dto::{Kind, SendFile, SendResult, SendText, SendUrl};
use crate::access::Scope;
use crate::api::ApiTags;
use crate::api::auth::Auth;
use crate::api::error::ApiError;
use crate::api::text;
use crate::engine::EngineError;
use crate::messaging::fetch::FetchError;
use crate::messaging::idempotency::{Idempotency, request_hash};
use crate::messaging::media::MediaError;
use crate::messaging::send::{Content, Extras, MediaSource, SendError};
use crate::state::AppState;

impl From<SendError> for ApiError {
    fn from(err: SendError) -> Self {
        let detail = err.to_string();
        let unprocessable =
            |code| Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail.clone());
        match err {
            SendError::InvalidNumber { .. } => unprocessable("invalid_phone_number"),
            SendError::SenderNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "sender_not_found", detail)
            }
            SendError::SenderNotConnected(_) | SendError::Engine(EngineError::NotConnected) => {
                Self::new(StatusCode::CONFLICT, "sender_not_connected", detail)
            }
            SendError::SenderOnAnotherNode(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "instance_unavailable",
                detail,
            )
            .retry_after(std::time::Duration::from_secs(5)),
            SendError::NotOnWhatsApp(_) => unprocessable("number_not_on_whatsapp"),
            SendError::Group(e) => (*e).into(),
            SendError::ReplyTargetUnknown(_) => unprocessable("reply_target_unknown"),
            SendError::NoInstanceOnline => {
                Self::new(StatusCode::CONFLICT, "no_instance_online", detail)
            }
            SendError::Media(MediaError::TooLarge { .. }) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "media_too_large", detail)
            }
            SendError::Media(MediaError::Mismatch { .. }) => unprocessable("media_type_mismatch"),
            SendError::Media(MediaError::Unrecognised) => unprocessable("unsupported_media_type"),
            SendError::Media(MediaError::Empty) => unprocessable("empty_media"),
            SendError::Fetch(FetchError::Forbidden(_)) => unprocessable("media_url_forbidden"),
            SendError::Fetch(FetchError::TooLarge(_)) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "media_too_large", detail)
            }
            SendError::Fetch(_) => Self::new(StatusCode::BAD_GATEWAY, "media_fetch_failed", detail),
            SendError::IdempotencyKeyReused => unprocessable("idempotency_key_reused"),
            SendError::QueueFull(ref full) => {
                let wait = full.retry_after;
                Self::new(StatusCode::TOO_MANY_REQUESTS, "send_queue_full", detail)
                    .retry_after(wait)
            }
            SendError::IdempotencyKeyInFlight => {
                Self::new(StatusCode::CONFLICT, "idempotency_key_in_flight", detail)
            }
            SendError::Failed { .. } => Self::new(StatusCode::BAD_GATEWAY, "send_failed", detail),
            SendError::Engine(EngineError::Timeout(_)) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "whatsapp_timeout", detail)
            }
            SendError::Engine(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", detail)
            }
            SendError::Db(e) => e.into(),
        }
    }
}

/// The key (its length checked by the parameter's validator) with the
/// request's digest.
/// The reply and mentions of a request, and their part of its digest.
pub(crate) fn extras(reply_to: Option<String>, mentions: Vec<String>) -> (Extras, String) {
    let digest = format!("{reply_to:?}{mentions:?}");
    (Extras { reply_to, mentions }, digest)
}

fn idempotency(key: Option<String>, parts: &[&[u8]]) -> Option<Idempotency> {
    key.map(|key| Idempotency {
        key,
        request_hash: request_hash(parts),
    })
}

pub struct SendApi {
    pub state: AppState,
}

impl SendApi {
    async fn text(
        &self,
        sender: String,
        body: SendText,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let (extras, digest) = extras(
            text::opt(body.reply_to),
            body.mentions.map(text::list).unwrap_or_default(),
        );
        let idem = idempotency(
            key,
            &[
                b"text",
                sender.as_bytes(),
                body.to.as_bytes(),
                body.text.as_bytes(),
                digest.as_bytes(),
            ],
        );
        let content = Content::Text { text: body.text.0 };
        let sent = self
            .state
            .messenger
            .send(&sender, &body.to, content, extras, idem, visible.as_deref())
            .await?;
        Ok(Json(sent.into()))
    }

    async fn url(
        &self,
        sender: String,
        body: SendUrl,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let (declared, voice) = Kind::declared(body.kind);
        let caption = body.caption.clone().unwrap_or_default();
        let name = body.file_name.clone().unwrap_or_default();
        let kind = match (declared, voice) {
            (_, true) => "voice",
            (Some(k), false) => k.as_str(),
            (None, false) => "",
        };
        let (extras, digest) = extras(
            text::opt(body.reply_to),
            body.mentions.map(text::list).unwrap_or_default(),
        );
        let idem = idempotency(
            key,
            &[
                b"url",
                sender.as_bytes(),
                body.to.as_bytes(),
                body.url.as_bytes(),
                caption.as_bytes(),
                name.as_bytes(),
                kind.as_bytes(),
                digest.as_bytes(),
            ],
        );
        let content = Content::Media {
            source: MediaSource::Url(body.url.0),
            declared,
            file_name: text::opt(body.file_name),
            caption: text::opt(body.caption),
            voice,
        };
        let sent = self
            .state
            .messenger
            .send(&sender, &body.to, content, extras, idem, visible.as_deref())
            .await?;
        Ok(Json(sent.into()))
    }

    async fn file(
        &self,
        sender: String,
        form: SendFile,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let limit = self.state.messenger.max_media_bytes();
        let file_name = form.file.file_name;
        let spooled = form.file.spooled;
        if spooled.len > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "media_too_large",
                format!("media files may be at most {limit} bytes"),
            ));
        }
        let (declared, voice) = Kind::declared(form.kind);
        let caption = form.caption.clone().unwrap_or_default();
        let kind = match (declared, voice) {
            (_, true) => "voice",
            (Some(k), false) => k.as_str(),
            (None, false) => "",
        };
        let (extras, digest) = extras(form.reply_to, form.mentions);
        let idem = idempotency(
            key,
            &[
                b"file",
                sender.as_bytes(),
                form.to.as_bytes(),
                &spooled.sha256,
                caption.as_bytes(),
                kind.as_bytes(),
                digest.as_bytes(),
            ],
        );
        let content = Content::Media {
            source: MediaSource::File(spooled),
            declared,
            file_name,
            caption: form.caption,
            voice,
        };
        let sent = self
            .state
            .messenger
            .send(&sender, &form.to, content, extras, idem, visible.as_deref())
            .await?;
        Ok(Json(sent.into()))
    }
}

#[OpenApi(tag = "ApiTags::Messages")]
impl SendApi {
    /// Send text
    ///
    /// From the instance paired with `phoneNumber` to `to`. A repeated
    /// `Idempotency-Key` returns the first answer and sends nothing again.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber",
        method = "post",
        operation_id = "send_text_v1"
    )]
    async fn send_text(
        &self,
        auth: Auth,
        #[oai(
            name = "phoneNumber",
            validator(max_length = 32, pattern = r"^\+?[0-9][0-9 ().-]{6,30}$")
        )]
        phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendText>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.text(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send a file from a URL
    ///
    /// The gateway fetches `url` (public addresses only, unless configured
    /// otherwise; a few redirects, each checked), sniffs the kind and sends it.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/media-url",
        method = "post",
        operation_id = "send_media_url_v1"
    )]
    async fn send_media_url(
        &self,
        auth: Auth,
        #[oai(
            name = "phoneNumber",
            validator(max_length = 32, pattern = r"^\+?[0-9][0-9 ().-]{6,30}$")
        )]
        phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendUrl>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.url(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send an uploaded file
    ///
    /// Multipart form with `to`, `file`, optional `caption` and `kind`. The
    /// kind is sniffed from the bytes; a declared kind that disagrees is 422.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/media-file",
        method = "post",
        operation_id = "send_media_file_v1"
    )]
    async fn send_media_file(
        &self,
        auth: Auth,
        #[oai(
            name = "phoneNumber",
            validator(max_length = 32, pattern = r"^\+?[0-9][0-9 ().-]{6,30}$")
        )]
        phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        form: SendFile,
    ) -> Result<Json<SendResult>, ApiError> {
        self.file(phone_number.0, form, key.0, auth.visible(Scope::Send))
            .await
    }
}
