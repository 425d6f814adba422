//! Operations on messages and chats that send no new content: edit and
//! delete a sent message, read marks, chat states and the instance's
//! presence. Each needs the instance's live session; edits and deletions
//! update the tracked message and emit their event in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::messages::{self, Column, Entity};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use super::send::{Messenger, SendError};
use super::tracking::message_payload;
use crate::engine::{ChatPresence, EngineError, NumberInfo, Session};
use crate::webhooks::EventType;

/// WhatsApp accepts edits of a message for 15 minutes after it was sent.
pub const EDIT_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("this instance sent no message {0}")]
    MessageNotFound(String),
    #[error("only text messages can be edited; {0} is a {1}")]
    NotEditable(String, String),
    #[error("WhatsApp's edit window (15 minutes) closed at {0}")]
    EditWindowClosed(DateTime<Utc>),
    #[error("message {0} was deleted")]
    Deleted(String),
    #[error("the instance is not connected to WhatsApp")]
    NotConnected,
    #[error("`{0}` is neither a phone number nor a user JID")]
    InvalidChat(String),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("WhatsApp engine: {0}")]
    Engine(#[from] EngineError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// How a deletion reaches the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteFor {
    /// Revoked: the recipient sees "This message was deleted".
    Everyone,
    /// Only our record of it is marked deleted.
    Me,
}

impl DeleteFor {
    fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Me => "me",
        }
    }
}

impl Messenger {
    fn live(&self, instance_id: Uuid) -> Result<Arc<dyn Session>, OperationError> {
        self.sessions()
            .session(instance_id)
            .ok_or(OperationError::NotConnected)
    }

    async fn sent_message(
        &self,
        instance_id: Uuid,
        message_id: &str,
    ) -> Result<messages::Model, OperationError> {
        Entity::find()
            .filter(Column::InstanceId.eq(instance_id))
            .filter(Column::WaMessageId.eq(message_id))
            .one(self.db())
            .await?
            .filter(|m| m.status != "failed")
            .ok_or_else(|| OperationError::MessageNotFound(message_id.to_owned()))
    }

    /// Replaces the text of a text message this instance sent, within
    /// WhatsApp's edit window; emits `message.edited`.
    pub async fn edit(
        &self,
        instance_id: Uuid,
        message_id: &str,
        text: &str,
    ) -> Result<messages::Model, OperationError> {
        let mut message = self.sent_message(instance_id, message_id).await?;
        if message.deleted_at.is_some() {
            return Err(OperationError::Deleted(message_id.to_owned()));
        }
        if message.kind != "text" {
            return Err(OperationError::NotEditable(
                message_id.to_owned(),
                message.kind,
            ));
        }
        let closes = message.created_at + EDIT_WINDOW;
        if Utc::now() > closes {
            return Err(OperationError::EditWindowClosed(closes));
        }
        let session = self.live(instance_id)?;
        session.edit_text(&message.to_jid, message_id, text).await?;
        let now = Utc::now();
        message.edited_at = Some(now);
        let data = {
            let mut data = message_payload(&message);
            data["text"] = json!(text);
            data["edited_at"] = json!(now);
            data
        };
        self.change(
            instance_id,
            &message,
            Column::EditedAt,
            now,
            EventType::MessageEdited,
            data,
        )
        .await?;
        Ok(message)
    }

    /// Deletes a message this instance sent: revoked for everyone, or only
    /// marked deleted here; emits `message.deleted`.
    pub async fn delete(
        &self,
        instance_id: Uuid,
        message_id: &str,
        scope: DeleteFor,
    ) -> Result<messages::Model, OperationError> {
        let mut message = self.sent_message(instance_id, message_id).await?;
        if scope == DeleteFor::Everyone {
            self.live(instance_id)?
                .revoke(&message.to_jid, message_id)
                .await?;
        }
        let now = Utc::now();
        message.deleted_at = Some(now);
        let data = {
            let mut data = message_payload(&message);
            data["for"] = json!(scope.as_str());
            data["deleted_at"] = json!(now);
            data
        };
        self.change(
            instance_id,
            &message,
            Column::DeletedAt,
            now,
            EventType::MessageDeleted,
            data,
        )
        .await?;
        Ok(message)
    }

    /// Sets `column` to `at` on the message and records its event, in one
    /// transaction.
    async fn change(
        &self,
        instance_id: Uuid,
        message: &messages::Model,
        column: Column,
        at: DateTime<Utc>,
        event: EventType,
        data: serde_json::Value,
    ) -> Result<(), OperationError> {
        let txn = crate::db::begin_write(self.db()).await?;
        Entity::update_many()
            .col_expr(column, Expr::value(at))
            .col_expr(Column::UpdatedAt, Expr::value(at))
            .filter(Column::Id.eq(message.id))
            .exec(&txn)
            .await?;
        let mut outbox = self.sessions().webhooks().outbox();
        outbox.record(&txn, instance_id, event, data).await?;
        txn.commit().await?;
        outbox.committed();
        Ok(())
    }

    /// The JID of a chat given as a phone number (checked on WhatsApp) or
    /// as a user JID (`…@s.whatsapp.net`, `…@lid`).
    async fn chat_jid(&self, session: &dyn Session, chat: &str) -> Result<String, OperationError> {
        Ok(self.chat_jids(session, chat).await?.0)
    }

    /// [`Self::chat_jid`], with the chat's LID when WhatsApp's directory
    /// names one (inbound messages may be addressed by it).
    async fn chat_jids(
        &self,
        session: &dyn Session,
        chat: &str,
    ) -> Result<(String, Option<String>), OperationError> {
        if let Some((user, server)) = chat.split_once('@') {
            let digits = !user.is_empty() && user.chars().all(|c| c.is_ascii_digit());
            return match server {
                "s.whatsapp.net" | "lid" if digits => Ok((chat.to_owned(), None)),
                _ => Err(OperationError::InvalidChat(chat.to_owned())),
            };
        }
        let number = self.normalize("chat", chat)?;
        match self.check(session, &number).await? {
            NumberInfo {
                registered: true,
                jid: Some(jid),
                lid,
                ..
            } => Ok((jid, lid)),
            _ => Err(SendError::NotOnWhatsApp(number).into()),
        }
    }

    /// Sends read receipts for `message_ids` of `chat` to their sender, or,
    /// with `None`, for every message of the chat not read yet. Returns the
    /// chat's JID and the ids read.
    pub async fn mark_read(
        &self,
        instance_id: Uuid,
        chat: &str,
        message_ids: Option<&[String]>,
    ) -> Result<(String, Vec<String>), OperationError> {
        use entity::inbound_messages as inbound;
        let session = self.live(instance_id)?;
        let (jid, lid) = self.chat_jids(&*session, chat).await?;
        let chats: Vec<String> = std::iter::once(jid.clone()).chain(lid).collect();
        let mut rows = inbound::Entity::find()
            .filter(inbound::Column::InstanceId.eq(instance_id))
            .filter(inbound::Column::ChatJid.is_in(chats));
        rows = match message_ids {
            Some(ids) => rows.filter(inbound::Column::WaMessageId.is_in(ids.iter().cloned())),
            // Reactions, edits, deletions and votes carry no body and are
            // not read.
            None => rows
                .filter(inbound::Column::ReadAt.is_null())
                .filter(inbound::Column::Body.is_not_null()),
        };
        let rows = rows
            .order_by_asc(inbound::Column::Id)
            .all(self.db())
            .await?;
        let read: Vec<String> = match message_ids {
            Some(ids) => {
                session.mark_read(&jid, ids).await?;
                ids.to_vec()
            }
            None => {
                // Receipts go to the chat as each message was addressed.
                let mut by_chat: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
                for row in &rows {
                    by_chat
                        .entry(row.chat_jid.as_str())
                        .or_default()
                        .push(row.wa_message_id.clone());
                }
                for (chat, ids) in &by_chat {
                    session.mark_read(chat, ids).await?;
                }
                rows.iter().map(|r| r.wa_message_id.clone()).collect()
            }
        };
        super::auto_read::mark(self.db(), rows.iter().map(|r| r.id).collect()).await?;
        Ok((jid, read))
    }

    /// Shows typing, recording or nothing in `chat`.
    pub async fn chat_presence(
        &self,
        instance_id: Uuid,
        chat: &str,
        state: ChatPresence,
    ) -> Result<String, OperationError> {
        let session = self.live(instance_id)?;
        let jid = self.chat_jid(&*session, chat).await?;
        session.chat_presence(&jid, state).await?;
        Ok(jid)
    }

    /// Shows the instance as online (available) or not to its contacts.
    pub async fn set_presence(
        &self,
        instance_id: Uuid,
        available: bool,
    ) -> Result<(), OperationError> {
        self.live(instance_id)?.set_presence(available).await?;
        Ok(())
    }
}
