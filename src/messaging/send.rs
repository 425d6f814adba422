//! The send pipeline: sender by number, recipient normalised and checked on
//! WhatsApp, idempotency, the send itself, and the tracking row with its
//! `message.sent` event in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::instances::{self, Status};
use entity::messages;
use phonenumber::country;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bodies;
use super::fetch::{FetchError, MediaFetcher};
use super::idempotency::Idempotency;
use super::idempotency::{self, Claimed};
use super::media::{self, MediaError};
use super::numbers::NumberCache;
use super::pacing::{Pacer, QueueFull};
use super::phone::{self, PhoneError};
use super::tracking::message_payload;
use crate::engine::{
    Body, Context, EngineError, MediaBody, MediaKind, NumberInfo, OutgoingMedia, OutgoingMessage,
    Quote, Session,
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
    #[error(
        "the instance paired with {0} is moving between gateway nodes or held by another; retry shortly"
    )]
    SenderOnAnotherNode(String),
    #[error("{0} is not on WhatsApp")]
    NotOnWhatsApp(String),
    #[error("reply_to: this instance neither sent nor received a message {0}")]
    ReplyTargetUnknown(String),
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
    /// Sending to a group the instance cannot send to.
    #[error(transparent)]
    Group(Box<super::groups::GroupsError>),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What to send.
pub enum Content {
    Text {
        text: String,
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

/// What a send carries besides its content, as the request gave it.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// WhatsApp id of a message this instance sent or received, to quote.
    pub reply_to: Option<String>,
    /// Numbers of the people to mention, as given.
    pub mentions: Vec<String>,
}

pub enum MediaSource {
    /// An upload, spooled to disk as it arrived.
    File(Spooled),
    /// Fetched once the request is accepted (after the idempotency check).
    Url(String),
}

enum Outgoing {
    Text { text: String },
    Media(Box<OutgoingMedia>),
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
    /// Who claims keys when no lease says it: this run of the process.
    run: String,
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
            run: format!("run:{}", Uuid::now_v7()),
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
        let Some(session) = self.sessions.session(instance.id) else {
            // Online, but not here: another node holds its lease, or this
            // node has just taken it over and its client is yet to start.
            return Err(match self.sessions.cluster() {
                Some(_) => SendError::SenderOnAnotherNode(sender.to_owned()),
                None => SendError::SenderNotConnected(sender.to_owned()),
            });
        };
        // Its row still says online, but this node's client is still
        // connecting: a node that just took the instance over (its previous
        // node could not record going away). A short wait, as above.
        if self.sessions.cluster().is_some() && self.sessions.connecting(instance.id) {
            return Err(SendError::SenderOnAnotherNode(sender.to_owned()));
        }
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
        extras: Extras,
        idempotency: Option<Idempotency>,
        visible: Option<&[Uuid]>,
    ) -> Result<Sent, SendError> {
        let sender = self.normalize("phoneNumber", sender)?;
        let to = match super::groups::is_group_jid(to.trim()) {
            true => to.trim().to_owned(),
            false => self.normalize("to", to)?,
        };
        let extras = Extras {
            mentions: extras
                .mentions
                .iter()
                .map(|m| self.normalize("mentions", m))
                .collect::<Result<Vec<_>, _>>()?,
            reply_to: extras.reply_to,
        };
        let (instance_id, session) = self.sender(&sender, visible).await?;
        if let Some(idem) = &idempotency {
            let expired_before =
                Utc::now() - chrono::Duration::from_std(self.idempotency_ttl).unwrap_or_default();
            let claimer = self.claimer(instance_id);
            let claimed =
                idempotency::claim(&self.db, instance_id, idem, &claimer, expired_before).await?;
            if let Claimed::Answered(replay) = claimed {
                return Ok(replay);
            }
        }
        let message_id = idempotency
            .as_ref()
            .map(|idem| idempotency::message_id(instance_id, &idem.key));
        let result = self
            .deliver(instance_id, &*session, &to, content, &extras, message_id)
            .await;
        if let Some(idem) = &idempotency {
            match &result {
                Ok(sent) => idempotency::remember(&self.db, instance_id, &idem.key, sent).await?,
                // A failed request may be retried with the same key.
                Err(_) => idempotency::release(&self.db, instance_id, &idem.key).await?,
            }
        }
        result
    }

    /// Who claims a key for a send of `instance_id` from here: the lease
    /// its session runs under on a cluster node, else this run.
    fn claimer(&self, instance_id: Uuid) -> String {
        self.sessions
            .cluster()
            .and_then(|cluster| cluster.fence(instance_id))
            .map(|fence| fence.claimer())
            .unwrap_or_else(|| self.run.clone())
    }

    async fn deliver(
        &self,
        instance_id: Uuid,
        session: &dyn Session,
        to: &str,
        content: Content,
        extras: &Extras,
        message_id: Option<String>,
    ) -> Result<Sent, SendError> {
        let quote = match extras.reply_to.as_deref() {
            Some(id) => Some(self.quote(instance_id, id).await?),
            None => None,
        };
        let mut context = Context {
            quote,
            mentions: Vec::with_capacity(extras.mentions.len()),
            message_id,
        };
        for number in &extras.mentions {
            match self.check(session, number).await? {
                NumberInfo {
                    registered: true,
                    jid: Some(jid),
                    ..
                } => context.mentions.push(jid),
                _ => return Err(SendError::NotOnWhatsApp(number.clone())),
            }
        }
        // Checked before the number, so a bad file costs no lookup.
        let (kind, outgoing) = match content {
            Content::Text { text } => (
                "text",
                Outgoing::Text {
                    text: with_mentions(text, &context.mentions),
                },
            ),
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
                // Audio carries no caption, so it mentions no one either.
                let caption = match kind {
                    MediaKind::Audio => caption,
                    _ if context.mentions.is_empty() => caption,
                    _ => Some(with_mentions(
                        caption.unwrap_or_default(),
                        &context.mentions,
                    )),
                };
                let media = OutgoingMedia {
                    kind,
                    body,
                    mime_type,
                    file_name,
                    caption,
                    voice: voice && kind == MediaKind::Audio,
                    context: context.clone(),
                };
                (kind.as_str(), Outgoing::Media(Box::new(media)))
            }
            Content::Message(mut message) => {
                if let OutgoingMessage::Reaction {
                    target_id, from_me, ..
                } = &mut message
                {
                    *from_me = self.sent_by(instance_id, target_id).await?;
                }
                // Drawn only now, so a repeated request digests the same.
                if let OutgoingMessage::Poll { secret, .. } = &mut message {
                    *secret = poll_secret()?;
                }
                (message.kind(), Outgoing::Message(message))
            }
        };
        // A group needs no number check; the instance must be in it.
        let mut receipts = None;
        let info = match super::groups::is_group_jid(to) {
            true => {
                let group = super::groups::check_member(session, to).await?;
                receipts = super::group_receipts::initial(&self.db, instance_id, &group).await?;
                Some(NumberInfo {
                    phone_number: to.to_owned(),
                    registered: true,
                    jid: Some(to.to_owned()),
                    lid: None,
                })
            }
            false => self
                .numbers
                .check(session, std::slice::from_ref(&to.to_owned()))
                .await?
                .pop(),
        };
        let (to_jid, to_lid) = match info {
            Some(NumberInfo {
                registered: true,
                jid: Some(jid),
                lid,
                ..
            }) => (jid, lid),
            _ => return Err(SendError::NotOnWhatsApp(to.to_owned())),
        };
        let body = match &outgoing {
            Outgoing::Text { text } => Some(Body::Text { text: text.clone() }),
            Outgoing::Media(media) => Some(Body::Media {
                kind: if media.voice {
                    "voice".to_owned()
                } else {
                    media.kind.as_str().to_owned()
                },
                caption: media.caption.clone(),
                mime_type: Some(media.mime_type.clone()),
                file_name: media.file_name.clone(),
            }),
            Outgoing::Message(message) => Body::of_outgoing(message),
        };
        let turn = self.pacer.turn(instance_id).await?;
        let clock = std::time::Instant::now();
        let sent = match outgoing {
            Outgoing::Text { text } => {
                if let Some(typing) = self.pacer.settings().typing_for(text.chars().count()) {
                    // Only a courtesy: a failure to show it does not stop the send.
                    if let Err(e) = session.typing(&to_jid).await {
                        tracing::debug!(error = %e, "typing indicator not sent");
                    }
                    tokio::time::sleep(typing).await;
                }
                session.send_text(&to_jid, &text, &context).await
            }
            Outgoing::Media(media) => session.send_media(&to_jid, *media).await,
            Outgoing::Message(message) => session.send_message(&to_jid, message, &context).await,
        };
        drop(turn);
        crate::metrics::send(kind, sent.is_ok(), clock.elapsed());
        let recorded = |message_id: String, failure: Option<String>| Recorded {
            instance_id,
            message_id,
            to: to.to_owned(),
            to_jid: to_jid.clone(),
            to_lid: to_lid.clone(),
            kind,
            failure,
            body: body.clone(),
            receipts: receipts.clone(),
        };
        let (db, hooks, keyring) = (&self.db, self.sessions.webhooks(), self.sessions.keyring());
        match sent {
            Ok(message_id) => record_sent(db, hooks, keyring, recorded(message_id, None)).await,
            Err(e) => {
                let message_id = format!("failed-{}", Uuid::now_v7().simple());
                let reason = e.to_string();
                record_sent(
                    db,
                    hooks,
                    keyring,
                    recorded(message_id.clone(), Some(reason.clone())),
                )
                .await?;
                Err(SendError::Failed { message_id, reason })
            }
        }
    }

    /// What a reply to message `wa_message_id` quotes: a message this
    /// instance sent (its sender is the instance) or received.
    async fn quote(&self, instance_id: Uuid, wa_message_id: &str) -> Result<Quote, SendError> {
        let keyring = self.sessions.keyring();
        if let Some(sent) = messages::Entity::find()
            .filter(messages::Column::InstanceId.eq(instance_id))
            .filter(messages::Column::WaMessageId.eq(wa_message_id))
            .filter(messages::Column::Status.ne("failed"))
            .one(&self.db)
            .await?
        {
            let own = instances::Entity::find_by_id(instance_id)
                .one(&self.db)
                .await?
                .and_then(|i| i.jid)
                .map(|jid| super::votes::without_device(&jid))
                .unwrap_or_default();
            return Ok(Quote {
                message_id: wa_message_id.to_owned(),
                sender_jid: own,
                body: bodies::open(keyring, bodies::SENT, sent.id, sent.body.as_deref()),
            });
        }
        use entity::inbound_messages::{Column, Entity};
        let received = Entity::find()
            .filter(Column::InstanceId.eq(instance_id))
            .filter(Column::WaMessageId.eq(wa_message_id))
            .one(&self.db)
            .await?
            .ok_or_else(|| SendError::ReplyTargetUnknown(wa_message_id.to_owned()))?;
        Ok(Quote {
            message_id: wa_message_id.to_owned(),
            sender_jid: received.sender_jid.clone(),
            body: bodies::open(
                keyring,
                bodies::RECEIVED,
                received.id,
                received.body.as_deref(),
            ),
        })
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

/// A send's outcome, to track.
pub(super) struct Recorded {
    pub instance_id: Uuid,
    pub message_id: String,
    pub to: String,
    pub to_jid: String,
    /// The recipient's LID, when the number check named it.
    pub to_lid: Option<String>,
    pub kind: &'static str,
    pub failure: Option<String>,
    pub body: Option<Body>,
    /// Sent to a group: every other participant's receipt, to come.
    pub receipts: Option<String>,
}

/// The tracking row (its body sealed) and its event, in one transaction.
pub(super) async fn record_sent(
    db: &DatabaseConnection,
    hooks: &crate::webhooks::Webhooks,
    keyring: &crate::sealing::Keyring,
    sent: Recorded,
) -> Result<Sent, SendError> {
    let now = Utc::now();
    let status = if sent.failure.is_some() {
        "failed"
    } else {
        "sent"
    };
    let id = Uuid::now_v7();
    let body = sent
        .body
        .as_ref()
        .map(|b| bodies::seal(keyring, bodies::SENT, id, b))
        .transpose()?;
    let row = messages::Model {
        id,
        instance_id: sent.instance_id,
        wa_message_id: sent.message_id.clone(),
        to_number: sent.to.clone(),
        to_jid: sent.to_jid.clone(),
        kind: sent.kind.to_owned(),
        status: status.to_owned(),
        error: sent.failure.clone(),
        created_at: now,
        updated_at: now,
        edited_at: None,
        deleted_at: None,
        body,
        to_lid: sent.to_lid.clone(),
        origin: "api".to_owned(),
        reactions: None,
        receipts: sent.receipts.clone(),
    };
    let txn = crate::db::begin_write(db).await?;
    messages::Entity::insert(messages::ActiveModel::from(row.clone()))
        .exec_without_returning(&txn)
        .await?;
    let event = if sent.failure.is_some() {
        EventType::MessageFailed
    } else {
        EventType::MessageSent
    };
    let mut outbox = hooks.outbox();
    outbox
        .record(&txn, sent.instance_id, event, message_payload(&row))
        .await?;
    txn.commit().await?;
    outbox.committed();
    Ok(Sent {
        message_id: sent.message_id,
        instance_id: sent.instance_id,
        to: sent.to,
        to_jid: sent.to_jid,
        status: status.to_owned(),
        timestamp: now,
    })
}

/// `text` naming every mentioned person as WhatsApp's apps write it
/// (`@` and the number): a mention missing from the text is appended.
pub fn with_mentions(mut text: String, mentioned_jids: &[String]) -> String {
    for jid in mentioned_jids {
        let user = jid.split(['@', ':']).next().unwrap_or(jid);
        let tag = format!("@{user}");
        let present = text
            .match_indices(&tag)
            .any(|(at, _)| !text[at + tag.len()..].starts_with(|c: char| c.is_ascii_digit()));
        if !present {
            if !text.is_empty() && !text.ends_with(char::is_whitespace) {
                text.push(' ');
            }
            text.push_str(&tag);
        }
    }
    text
}

/// A fresh message secret for a poll: its votes are encrypted with it.
fn poll_secret() -> Result<[u8; 32], SendError> {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| SendError::Engine(EngineError::Other("no randomness for a poll".into())))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::with_mentions;

    #[test]
    fn mentions_are_named_in_the_text() {
        let jids = ["6281@s.whatsapp.net".to_owned()];
        assert_eq!(with_mentions("hi @6281".into(), &jids), "hi @6281");
        assert_eq!(with_mentions("hi".into(), &jids), "hi @6281");
        // `@62812` is someone else.
        assert_eq!(with_mentions("@62812".into(), &jids), "@62812 @6281");
        assert_eq!(with_mentions(String::new(), &jids), "@6281");
    }
}
