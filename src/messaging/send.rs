//! The send pipeline: sender by number, recipient normalised and checked on
//! WhatsApp, idempotency, the send itself, and the tracking row with its
//! `message.sent` event in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::instances::{self, Status};
use entity::{idempotency_keys, messages};
use phonenumber::country;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::fetch::{FetchError, MediaFetcher};
use super::media::{self, MediaError};
use super::numbers::NumberCache;
use super::pacing::{Pacer, QueueFull};
use super::phone::{self, PhoneError};
use super::tracking::message_payload;
use crate::engine::{
    EngineError, MediaBody, MediaKind, NumberInfo, OutgoingMedia, OutgoingMessage, Session,
};
use crate::instances::sessions::Sessions;
use crate::messaging::spool::{HEAD_LEN, Spooled};
use crate::webhooks::EventType;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{field}: {source}")]
    InvalidNumber {
        field: &'static str,
        source: PhoneError,
    },
    #[error("no instance is paired with the number {0}")]
    SenderNotFound(String),
    #[error("the instance paired with {0} is not connected to WhatsApp")]
    SenderNotConnected(String),
    #[error("{0} is not on WhatsApp")]
    NotOnWhatsApp(String),
    #[error("no instance is online to ask WhatsApp")]
    NoInstanceOnline,
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    QueueFull(#[from] QueueFull),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInFlight,
    #[error("WhatsApp did not take the message: {reason}")]
    Failed { message_id: String, reason: String },
    #[error("WhatsApp engine: {0}")]
    Engine(#[from] EngineError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What to send.
pub enum Content {
    Text {
        text: String,
        reply_to: Option<String>,
    },
    Media {
        source: MediaSource,
        declared: Option<MediaKind>,
        file_name: Option<String>,
        caption: Option<String>,
        voice: bool,
    },
    /// A reaction, location, contact card(s) or poll, already checked
    /// (see [`super::compose`]).
    Message(OutgoingMessage),
}

pub enum MediaSource {
    /// An upload, spooled to disk as it arrived.
    File(Spooled),
    /// Fetched once the request is accepted (after the idempotency check).
    Url(String),
}

enum Outgoing {
    Text {
        text: String,
        reply_to: Option<String>,
    },
    Media(OutgoingMedia),
    Message(OutgoingMessage),
}

/// The answer to an accepted send; replayed verbatim for a repeated
/// Idempotency-Key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    pub instance_id: Uuid,
    pub to: String,
    pub to_jid: String,
    pub status: String,
    pub timestamp: DateTime<Utc>,
}

/// A request's Idempotency-Key and the digest of what it asked.
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// SHA-256 (hex) over the parts of a request, each length-prefixed so that
/// moving bytes between parts changes the digest.
pub fn request_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone)]
pub struct Messenger {
    db: DatabaseConnection,
    sessions: Sessions,
    numbers: NumberCache,
    fetcher: MediaFetcher,
    default_region: Option<country::Id>,
    max_media_bytes: u64,
    idempotency_ttl: Duration,
    pacer: Pacer,
}

impl Messenger {
    pub fn new(
        db: DatabaseConnection,
        sessions: Sessions,
        settings: &crate::config::Settings,
    ) -> Result<Self, crate::outbound::OutboundError> {
        let fetcher = MediaFetcher::new(
            crate::outbound::Targets::from_settings(settings),
            Duration::from_secs(settings.messaging.media_fetch_timeout_secs),
            settings.messaging.max_media_bytes,
        )?;
        let settings = &settings.messaging;
        Ok(Self {
            db,
            sessions,
            numbers: NumberCache::new(Duration::from_secs(settings.number_cache_ttl_secs)),
            fetcher,
            default_region: phone::region(&settings.default_region),
            max_media_bytes: settings.max_media_bytes,
            idempotency_ttl: Duration::from_secs(settings.idempotency_ttl_secs),
            pacer: Pacer::new(settings.pacing.clone()),
        })
    }

    pub(super) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(super) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// What WhatsApp's directory says of one number (cached).
    pub(super) async fn check(
        &self,
        session: &dyn Session,
        number: &str,
    ) -> Result<NumberInfo, SendError> {
        self.numbers
            .check(session, std::slice::from_ref(&number.to_owned()))
            .await?
            .pop()
            .ok_or_else(|| SendError::NotOnWhatsApp(number.to_owned()))
    }

    pub fn max_media_bytes(&self) -> u64 {
        self.max_media_bytes
    }

    pub fn normalize(&self, field: &'static str, input: &str) -> Result<String, SendError> {
        phone::normalize(input, self.default_region)
            .map_err(|source| SendError::InvalidNumber { field, source })
    }

    /// The online instance paired with `sender`, and its live client.
    async fn sender(
        &self,
        sender: &str,
        visible: Option<&[Uuid]>,
    ) -> Result<(Uuid, std::sync::Arc<dyn Session>), SendError> {
        let instance = instances::Entity::find()
            .filter(instances::Column::PhoneNumber.eq(sender))
            .one(&self.db)
            .await?
            .filter(|i| visible.is_none_or(|ids| ids.contains(&i.id)))
            .ok_or_else(|| SendError::SenderNotFound(sender.to_owned()))?;
        if instance.status != Status::Online {
            return Err(SendError::SenderNotConnected(sender.to_owned()));
        }
        let session = self
            .sessions
            .session(instance.id)
            .ok_or_else(|| SendError::SenderNotConnected(sender.to_owned()))?;
        Ok((instance.id, session))
    }

    /// Sends `content` from the instance paired with `sender` to `to`.
    /// `visible`, when given, lists the instances the caller may send from;
    /// any other sender is "not found".
    pub async fn send(
        &self,
        sender: &str,
        to: &str,
        content: Content,
        idempotency: Option<Idempotency>,
        visible: Option<&[Uuid]>,
    ) -> Result<Sent, SendError> {
        let sender = self.normalize("phoneNumber", sender)?;
        let to = self.normalize("to", to)?;
        let (instance_id, session) = self.sender(&sender, visible).await?;
        if let Some(idem) = &idempotency
            && let Some(replay) = self.claim_key(instance_id, idem).await?
        {
            return Ok(replay);
        }
        let result = self.deliver(instance_id, &*session, &to, content).await;
        if let Some(idem) = &idempotency {
            match &result {
                Ok(sent) => self.remember(instance_id, &idem.key, sent).await?,
                // A failed request may be retried with the same key.
                Err(_) => self.release_key(instance_id, &idem.key).await?,
            }
        }
        result
    }

    async fn deliver(
        &self,
        instance_id: Uuid,
        session: &dyn Session,
        to: &str,
        content: Content,
    ) -> Result<Sent, SendError> {
        // Checked before the number, so a bad file costs no lookup.
        let (kind, outgoing) = match content {
            Content::Text { text, reply_to } => ("text", Outgoing::Text { text, reply_to }),
            Content::Media {
                source,
                declared,
                file_name,
                caption,
                voice,
            } => {
                let (body, head, file_name) = match source {
                    MediaSource::File(spooled) => {
                        let body = MediaBody::File {
                            file: spooled.file,
                            len: spooled.len,
                        };
                        (body, spooled.head, file_name)
                    }
                    MediaSource::Url(url) => {
                        let fetched = self.fetcher.fetch(&url).await?;
                        let head = fetched.bytes[..fetched.bytes.len().min(HEAD_LEN)].to_vec();
                        let body = MediaBody::Bytes(fetched.bytes);
                        (body, head, file_name.or(fetched.file_name))
                    }
                };
                let (kind, mime_type) =
                    media::classify(&head, body.len(), declared, self.max_media_bytes)?;
                let media = OutgoingMedia {
                    kind,
                    body,
                    mime_type,
                    file_name,
                    caption,
                    voice: voice && kind == MediaKind::Audio,
                };
                (kind.as_str(), Outgoing::Media(media))
            }
            Content::Message(mut message) => {
                if let OutgoingMessage::Reaction {
                    target_id, from_me, ..
                } = &mut message
                {
                    *from_me = self.sent_by(instance_id, target_id).await?;
                }
                (message.kind(), Outgoing::Message(message))
            }
        };
        let info = self
            .numbers
            .check(session, std::slice::from_ref(&to.to_owned()))
            .await?
            .pop();
        let to_jid = match info {
            Some(NumberInfo {
                registered: true,
                jid: Some(jid),
                ..
            }) => jid,
            _ => return Err(SendError::NotOnWhatsApp(to.to_owned())),
        };
        let turn = self.pacer.turn(instance_id).await?;
        let clock = std::time::Instant::now();
        let sent = match outgoing {
            Outgoing::Text { text, reply_to } => {
                if let Some(typing) = self.pacer.settings().typing_for(text.chars().count()) {
                    // Only a courtesy: a failure to show it does not stop the send.
                    if let Err(e) = session.typing(&to_jid).await {
                        tracing::debug!(error = %e, "typing indicator not sent");
                    }
                    tokio::time::sleep(typing).await;
                }
                session.send_text(&to_jid, &text, reply_to.as_deref()).await
            }
            Outgoing::Media(media) => session.send_media(&to_jid, media).await,
            Outgoing::Message(message) => session.send_message(&to_jid, message).await,
        };
        drop(turn);
        crate::metrics::send(kind, sent.is_ok(), clock.elapsed());
        match sent {
            Ok(message_id) => {
                self.record(instance_id, &message_id, to, &to_jid, kind, None)
                    .await
            }
            Err(e) => {
                let message_id = format!("failed-{}", Uuid::now_v7().simple());
                let reason = e.to_string();
                self.record(instance_id, &message_id, to, &to_jid, kind, Some(&reason))
                    .await?;
                Err(SendError::Failed { message_id, reason })
            }
        }
    }

    /// Whether this instance sent message `wa_message_id` (else it is one
    /// the chat sent us).
    async fn sent_by(&self, instance_id: Uuid, wa_message_id: &str) -> Result<bool, SendError> {
        Ok(messages::Entity::find()
            .filter(messages::Column::InstanceId.eq(instance_id))
            .filter(messages::Column::WaMessageId.eq(wa_message_id))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The tracking row and its event, in one transaction.
    async fn record(
        &self,
        instance_id: Uuid,
        message_id: &str,
        to: &str,
        to_jid: &str,
        kind: &str,
        failure: Option<&str>,
    ) -> Result<Sent, SendError> {
        let now = Utc::now();
        let status = if failure.is_some() { "failed" } else { "sent" };
        let row = messages::Model {
            id: Uuid::now_v7(),
            instance_id,
            wa_message_id: message_id.to_owned(),
            to_number: to.to_owned(),
            to_jid: to_jid.to_owned(),
            kind: kind.to_owned(),
            status: status.to_owned(),
            error: failure.map(str::to_owned),
            created_at: now,
            updated_at: now,
            edited_at: None,
            deleted_at: None,
        };
        let txn = crate::db::begin_write(&self.db).await?;
        messages::Entity::insert(messages::ActiveModel::from(row.clone()))
            .exec_without_returning(&txn)
            .await?;
        let event = if failure.is_some() {
            EventType::MessageFailed
        } else {
            EventType::MessageSent
        };
        let mut outbox = self.sessions.webhooks().outbox();
        outbox
            .record(&txn, instance_id, event, message_payload(&row))
            .await?;
        txn.commit().await?;
        outbox.committed();
        Ok(Sent {
            message_id: message_id.to_owned(),
            instance_id,
            to: to.to_owned(),
            to_jid: to_jid.to_owned(),
            status: status.to_owned(),
            timestamp: now,
        })
    }

    /// Claims `key` for this request, or returns the first answer to it.
    async fn claim_key(
        &self,
        instance_id: Uuid,
        idem: &Idempotency,
    ) -> Result<Option<Sent>, SendError> {
        use idempotency_keys::{ActiveModel, Column, Entity};
        let expired_before =
            Utc::now() - chrono::Duration::from_std(self.idempotency_ttl).unwrap_or_default();
        Entity::delete_many()
            .filter(Column::InstanceId.eq(instance_id))
            .filter(Column::Key.eq(&idem.key))
            .filter(Column::CreatedAt.lt(expired_before))
            .exec(&self.db)
            .await?;
        let claim = ActiveModel {
            instance_id: Set(instance_id),
            key: Set(idem.key.clone()),
            request_hash: Set(idem.request_hash.clone()),
            response: Set(None),
            created_at: Set(Utc::now()),
        };
        // The primary key makes the claim atomic: one request wins.
        let inserted = Entity::insert(claim)
            .on_conflict_do_nothing()
            .exec_without_returning(&self.db)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            return Ok(None);
        }
        let first = Entity::find_by_id((instance_id, idem.key.clone()))
            .one(&self.db)
            .await?
            .ok_or(SendError::IdempotencyKeyInFlight)?;
        if first.request_hash != idem.request_hash {
            return Err(SendError::IdempotencyKeyReused);
        }
        match first.response {
            Some(response) => serde_json::from_value(response)
                .map(Some)
                .map_err(|e| SendError::Db(DbErr::Custom(e.to_string()))),
            None => Err(SendError::IdempotencyKeyInFlight),
        }
    }

    async fn remember(&self, instance_id: Uuid, key: &str, sent: &Sent) -> Result<(), SendError> {
        use idempotency_keys::{Column, Entity};
        let response =
            serde_json::to_value(sent).map_err(|e| SendError::Db(DbErr::Custom(e.to_string())))?;
        Entity::update_many()
            .col_expr(Column::Response, sea_orm::sea_query::Expr::value(response))
            .filter(Column::InstanceId.eq(instance_id))
            .filter(Column::Key.eq(key))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn release_key(&self, instance_id: Uuid, key: &str) -> Result<(), SendError> {
        use idempotency_keys::{Column, Entity};
        Entity::delete_many()
            .filter(Column::InstanceId.eq(instance_id))
            .filter(Column::Key.eq(key))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Looks numbers up through the named instance, or any online one.
    pub async fn check_numbers(
        &self,
        numbers: &[String],
        via: Option<Uuid>,
        visible: Option<&[Uuid]>,
    ) -> Result<Vec<NumberInfo>, SendError> {
        let mut candidates: Vec<Uuid> = match via {
            Some(id) => vec![id],
            None => instances::Entity::find()
                .filter(instances::Column::Status.eq(Status::Online))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect(),
        };
        // A hidden instance answers as a missing one does.
        if let Some(ids) = visible {
            candidates.retain(|id| ids.contains(id));
        }
        let session = candidates
            .into_iter()
            .find_map(|id| self.sessions.session(id))
            .ok_or(SendError::NoInstanceOnline)?;
        Ok(self.numbers.check(&*session, numbers).await?)
    }
}
