//! Operations on an instance's messages and chats: edit and delete a sent
//! message, read marks, chat states (typing, recording) and the instance's
//! own presence.

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::text::{self, Text};
use crate::access::Scope;
use crate::engine::{ChatPresence, EngineError};
use crate::instances::store;
use crate::messaging::operations::{DeleteFor, OperationError};
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct EditMessage {
    /// The new text.
    #[oai(validator(min_length = 1, max_length = 65536))]
    pub text: Text,
}

/// A sent message after an edit or a deletion.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChangedMessage {
    pub message_id: String,
    pub instance_id: Uuid,
    /// Recipient, E.164 digits.
    pub to: String,
    pub kind: String,
    pub status: String,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<entity::messages::Model> for ChangedMessage {
    fn from(m: entity::messages::Model) -> Self {
        Self {
            message_id: m.wa_message_id,
            instance_id: m.instance_id,
            to: m.to_number,
            kind: m.kind,
            status: m.status,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeleteScope {
    /// Revoke: the recipient sees that the message was deleted.
    Everyone,
    /// Only this gateway's record is marked deleted.
    Me,
}

/// Which messages to mark read: the named ones, or (without
/// `message_ids`, or with `all: true`) every message of the chat not read
/// yet.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct MarkRead {
    /// Ids of messages the chat sent to this instance.
    #[oai(validator(min_items = 1, max_items = 100))]
    pub message_ids: Option<Vec<Text>>,
    /// Every unread message of the chat; not with `message_ids`.
    pub all: Option<bool>,
}

#[derive(Debug, Object)]
pub struct MarkedRead {
    /// The chat's JID the receipts went to.
    pub chat_jid: String,
    pub message_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ChatState {
    /// "typing…"
    Typing,
    /// "recording audio…"
    Recording,
    /// Stops either.
    Paused,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SetChatPresence {
    pub state: ChatState,
}

#[derive(Debug, Object)]
pub struct ChatPresenceSet {
    pub chat_jid: String,
    pub state: ChatState,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SetPresence {
    /// Whether contacts see the instance as online.
    pub available: bool,
}

impl From<OperationError> for ApiError {
    fn from(err: OperationError) -> Self {
        let detail = err.to_string();
        match err {
            OperationError::MessageNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "message_not_found", detail)
            }
            OperationError::NotEditable(..) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "message_not_editable",
                detail,
            ),
            OperationError::EditWindowClosed(_) => {
                Self::new(StatusCode::CONFLICT, "edit_window_closed", detail)
            }
            OperationError::Deleted(_) => {
                Self::new(StatusCode::CONFLICT, "message_deleted", detail)
            }
            OperationError::NotConnected | OperationError::Engine(EngineError::NotConnected) => {
                Self::new(StatusCode::CONFLICT, "instance_not_connected", detail)
            }
            OperationError::InvalidChat(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_chat", detail)
            }
            OperationError::Send(e) => e.into(),
            OperationError::Engine(EngineError::Timeout(_)) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "whatsapp_timeout", detail)
            }
            OperationError::Engine(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", detail)
            }
            OperationError::Db(e) => e.into(),
        }
    }
}

pub struct ChatsApi {
    pub state: AppState,
}

impl ChatsApi {
    /// Authorises `scope` on the instance and checks that it exists.
    async fn instance(&self, auth: &Auth, id: Uuid, scope: Scope) -> Result<(), ApiError> {
        auth.instance(id, scope)?;
        store::get(&self.state.db, id).await?;
        Ok(())
    }
}

#[OpenApi(tag = "ApiTags::Messages")]
impl ChatsApi {
    /// Edit a sent text
    ///
    /// Within WhatsApp's 15-minute edit window (after it: 409
    /// `edit_window_closed`). Emits `message.edited`.
    #[oai(
        path = "/v1/instances/:id/messages/:message_id",
        method = "patch",
        operation_id = "edit_message"
    )]
    async fn edit_message(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<String>,
        body: Json<EditMessage>,
    ) -> Result<Json<ChangedMessage>, ApiError> {
        self.instance(&auth, id.0, Scope::Send).await?;
        let edited = self
            .state
            .messenger
            .edit(id.0, &message_id.0, &body.0.text)
            .await?;
        Ok(Json(edited.into()))
    }

    /// Delete a sent message
    ///
    /// For everyone (revoke, the default) or, with `for=me`, only in this
    /// gateway's record. Emits `message.deleted`.
    #[oai(
        path = "/v1/instances/:id/messages/:message_id",
        method = "delete",
        operation_id = "delete_message"
    )]
    async fn delete_message(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        message_id: Path<String>,
        #[oai(name = "for")] scope: Query<Option<DeleteScope>>,
    ) -> Result<Json<ChangedMessage>, ApiError> {
        self.instance(&auth, id.0, Scope::Send).await?;
        let scope = match scope.0 {
            Some(DeleteScope::Me) => DeleteFor::Me,
            Some(DeleteScope::Everyone) | None => DeleteFor::Everyone,
        };
        let deleted = self
            .state
            .messenger
            .delete(id.0, &message_id.0, scope)
            .await?;
        Ok(Json(deleted.into()))
    }

    /// Mark messages read
    ///
    /// Read receipts for the named messages go to the chat's sender; with
    /// no `message_ids` (or `all: true`), for every message of the chat not
    /// read yet. `chat` is a phone number or a JID.
    #[oai(
        path = "/v1/instances/:id/chats/:chat/read",
        method = "post",
        operation_id = "mark_chat_read"
    )]
    async fn mark_read(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        chat: Path<String>,
        body: Json<MarkRead>,
    ) -> Result<Json<MarkedRead>, ApiError> {
        self.instance(&auth, id.0, Scope::Send).await?;
        let named = body.0.message_ids.map(text::list);
        if named.is_some() && body.0.all == Some(true) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_read_request",
                "name message_ids or ask for all, not both",
            ));
        }
        let (chat_jid, message_ids) = self
            .state
            .messenger
            .mark_read(id.0, &chat.0, named.as_deref())
            .await?;
        Ok(Json(MarkedRead {
            chat_jid,
            message_ids,
        }))
    }

    /// Show typing or recording in a chat
    #[oai(
        path = "/v1/instances/:id/chats/:chat/presence",
        method = "post",
        operation_id = "set_chat_presence"
    )]
    async fn chat_presence(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        chat: Path<String>,
        body: Json<SetChatPresence>,
    ) -> Result<Json<ChatPresenceSet>, ApiError> {
        self.instance(&auth, id.0, Scope::Send).await?;
        let state = body.0.state;
        let presence = match state {
            ChatState::Typing => ChatPresence::Typing,
            ChatState::Recording => ChatPresence::Recording,
            ChatState::Paused => ChatPresence::Paused,
        };
        let chat_jid = self
            .state
            .messenger
            .chat_presence(id.0, &chat.0, presence)
            .await?;
        Ok(Json(ChatPresenceSet { chat_jid, state }))
    }

    /// Set the instance's presence
    ///
    /// `available: true` shows it online to its contacts.
    #[oai(
        path = "/v1/instances/:id/presence",
        method = "put",
        operation_id = "set_presence"
    )]
    async fn presence(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<SetPresence>,
    ) -> Result<Json<SetPresence>, ApiError> {
        self.instance(&auth, id.0, Scope::Send).await?;
        self.state
            .messenger
            .set_presence(id.0, body.0.available)
            .await?;
        Ok(Json(body.0))
    }
}
