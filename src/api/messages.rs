//! Sending by the sender's number (the seed routes, also under `/v1`),
//! number checks and the message log.

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{Enum, Multipart, Object, OpenApi};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::text::{self, Text};
use crate::access::Scope;
use crate::engine::{EngineError, MediaKind};
use crate::messaging::fetch::FetchError;
use crate::messaging::history;
use crate::messaging::media::MediaError;
use crate::messaging::send::{Content, Idempotency, MediaSource, SendError, Sent, request_hash};
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendText {
    /// Recipient's number: international (`+62…`, `0062…`) or national with
    /// the configured default region.
    #[oai(validator(max_length = 32))]
    pub to: Text,
    #[oai(validator(min_length = 1, max_length = 65536))]
    pub text: Text,
    /// WhatsApp id of a message in this chat to reply to.
    #[oai(validator(max_length = 128))]
    pub reply_to: Option<Text>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Kind {
    Image,
    Video,
    Audio,
    /// Audio sent as a voice note.
    Voice,
    Document,
}

impl Kind {
    /// The media kind a request declared, if any, and whether it asked for
    /// a voice note.
    fn declared(kind: Option<Kind>) -> (Option<MediaKind>, bool) {
        match kind {
            None => (None, false),
            Some(Kind::Image) => (Some(MediaKind::Image), false),
            Some(Kind::Video) => (Some(MediaKind::Video), false),
            Some(Kind::Audio) => (Some(MediaKind::Audio), false),
            Some(Kind::Voice) => (Some(MediaKind::Audio), true),
            Some(Kind::Document) => (Some(MediaKind::Document), false),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendUrl {
    /// Recipient's number.
    #[oai(validator(max_length = 32))]
    pub to: Text,
    /// An http(s) URL the gateway fetches the file from.
    #[oai(validator(max_length = 2048))]
    pub url: Text,
    pub caption: Option<Text>,
    /// File name shown for documents; taken from the URL when absent.
    #[oai(validator(max_length = 255))]
    pub file_name: Option<Text>,
    /// Declared kind; sniffed from the bytes when absent.
    pub kind: Option<Kind>,
}

/// A file to send, as a multipart form.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct SendFile {
    /// Recipient's number.
    pub to: String,
    pub file: Upload,
    pub caption: Option<String>,
    /// Declared kind; sniffed from the bytes when absent.
    pub kind: Option<Kind>,
}

/// The answer to an accepted send.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SendResult {
    /// WhatsApp's id of the message; receipts and webhooks name it.
    pub message_id: String,
    pub instance_id: Uuid,
    /// Recipient, E.164 digits.
    pub to: String,
    /// The JID WhatsApp delivers to (it may differ from `to`).
    pub to_jid: String,
    /// `sent`.
    pub status: String,
    pub timestamp: DateTime<Utc>,
}

impl From<Sent> for SendResult {
    fn from(s: Sent) -> Self {
        Self {
            message_id: s.message_id,
            instance_id: s.instance_id,
            to: s.to,
            to_jid: s.to_jid,
            status: s.status,
            timestamp: s.timestamp,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CheckNumbers {
    #[oai(validator(min_items = 1, max_items = 50))]
    pub numbers: Vec<Text>,
    /// Ask through this instance; any online instance when absent.
    pub instance_id: Option<Uuid>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NumberResult {
    /// The number as given.
    pub input: String,
    /// E.164 digits.
    pub phone_number: String,
    pub registered: bool,
    /// The JID to message; may differ from the number.
    pub jid: Option<String>,
    pub lid: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NumberResults {
    pub results: Vec<NumberResult>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Message")]
pub struct MessageView {
    pub message_id: String,
    pub instance_id: Uuid,
    pub to: String,
    pub to_jid: String,
    /// `text`, `image`, `video`, `audio` or `document`.
    pub kind: String,
    /// `sent`, `server_ack`, `delivered`, `read`, `played` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<entity::messages::Model> for MessageView {
    fn from(m: entity::messages::Model) -> Self {
        Self {
            message_id: m.wa_message_id,
            instance_id: m.instance_id,
            to: m.to_number,
            to_jid: m.to_jid,
            kind: m.kind,
            status: m.status,
            error: m.error,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum MessageStatus {
    Sent,
    ServerAck,
    Delivered,
    Read,
    Played,
    Failed,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

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
            SendError::NotOnWhatsApp(_) => unprocessable("number_not_on_whatsapp"),
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
fn idempotency(key: Option<String>, parts: &[&[u8]]) -> Option<Idempotency> {
    key.map(|key| Idempotency {
        key,
        request_hash: request_hash(parts),
    })
}

pub struct MessagesApi {
    pub state: AppState,
}

impl MessagesApi {
    async fn text(
        &self,
        sender: String,
        body: SendText,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let reply = body.reply_to.clone().unwrap_or_default();
        let idem = idempotency(
            key,
            &[
                b"text",
                sender.as_bytes(),
                body.to.as_bytes(),
                body.text.as_bytes(),
                reply.as_bytes(),
            ],
        );
        let content = Content::Text {
            text: body.text.0,
            reply_to: text::opt(body.reply_to),
        };
        let sent = self
            .state
            .messenger
            .send(&sender, &body.to, content, idem, visible.as_deref())
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
            .send(&sender, &body.to, content, idem, visible.as_deref())
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
        let file_name = form.file.file_name().map(str::to_owned);
        let mut bytes = Vec::new();
        form.file
            .into_async_read()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    e.to_string(),
                )
            })?;
        if bytes.len() as u64 > limit {
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
        let idem = idempotency(
            key,
            &[
                b"file",
                sender.as_bytes(),
                form.to.as_bytes(),
                &bytes,
                caption.as_bytes(),
                kind.as_bytes(),
            ],
        );
        let content = Content::Media {
            source: MediaSource::Bytes(bytes),
            declared,
            file_name,
            caption: form.caption,
            voice,
        };
        let sent = self
            .state
            .messenger
            .send(&sender, &form.to, content, idem, visible.as_deref())
            .await?;
        Ok(Json(sent.into()))
    }
}

#[OpenApi(tag = "ApiTags::Messages")]
impl MessagesApi {
    /// Send text
    ///
    /// From the instance paired with `phoneNumber` to `to`. A repeated
    /// `Idempotency-Key` returns the first answer and sends nothing again.
    #[oai(
        path = "/send/by-number/:phoneNumber",
        method = "post",
        operation_id = "send_text"
    )]
    async fn send_text(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendText>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.text(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send text (v1)
    #[oai(
        path = "/v1/send/by-number/:phoneNumber",
        method = "post",
        operation_id = "send_text_v1"
    )]
    async fn send_text_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
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
        path = "/send/by-number/:phoneNumber/media-url",
        method = "post",
        operation_id = "send_media_url"
    )]
    async fn send_media_url(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendUrl>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.url(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send a file from a URL (v1)
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/media-url",
        method = "post",
        operation_id = "send_media_url_v1"
    )]
    async fn send_media_url_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
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
        path = "/send/by-number/:phoneNumber/media-file",
        method = "post",
        operation_id = "send_media_file"
    )]
    async fn send_media_file(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        form: SendFile,
    ) -> Result<Json<SendResult>, ApiError> {
        self.file(phone_number.0, form, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send an uploaded file (v1)
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/media-file",
        method = "post",
        operation_id = "send_media_file_v1"
    )]
    async fn send_media_file_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        form: SendFile,
    ) -> Result<Json<SendResult>, ApiError> {
        self.file(phone_number.0, form, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Check numbers
    ///
    /// Whether each number is on WhatsApp, and the JID to message it at.
    #[oai(
        path = "/v1/numbers/check",
        method = "post",
        operation_id = "check_numbers"
    )]
    async fn check_numbers(
        &self,
        auth: Auth,
        body: Json<CheckNumbers>,
    ) -> Result<Json<NumberResults>, ApiError> {
        let messenger = &self.state.messenger;
        let normalized = body
            .0
            .numbers
            .iter()
            .map(|n| messenger.normalize("numbers", n))
            .collect::<Result<Vec<_>, _>>()?;
        let infos = messenger
            .check_numbers(
                &normalized,
                body.0.instance_id,
                auth.visible(Scope::Send).as_deref(),
            )
            .await?;
        let results = body
            .0
            .numbers
            .into_iter()
            .zip(infos)
            .map(|(input, info)| NumberResult {
                input: input.0,
                phone_number: info.phone_number,
                registered: info.registered,
                jid: info.jid,
                lid: info.lid,
            })
            .collect();
        Ok(Json(NumberResults { results }))
    }

    /// Get a message
    #[oai(
        path = "/v1/instances/:id/messages/:message_id",
        method = "get",
        operation_id = "get_message"
    )]
    async fn get_message(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<String>,
    ) -> Result<Json<MessageView>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        history::get(&self.state.db, id.0, &message_id.0)
            .await?
            .map(|m| Json(m.into()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "message_not_found",
                    format!("no message {} on instance {}", message_id.0, id.0),
                )
            })
    }

    /// List messages
    ///
    /// Sent messages, oldest first.
    #[oai(
        path = "/v1/instances/:id/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    async fn list_messages(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        status: Query<Option<MessageStatus>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))] limit: Query<
            Option<u64>,
        >,
        after: Query<Option<Uuid>>,
    ) -> Result<Json<MessagePage>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        let limit = super::page_limit(&self.state.settings.api, limit.0);
        let status = status.0.map(|s| match s {
            MessageStatus::Sent => "sent",
            MessageStatus::ServerAck => "server_ack",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Played => "played",
            MessageStatus::Failed => "failed",
        });
        let (rows, next) = history::list(&self.state.db, id.0, status, after.0, limit).await?;
        Ok(Json(MessagePage {
            items: rows.into_iter().map(Into::into).collect(),
            next_after: next,
        }))
    }
}
