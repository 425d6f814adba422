//! Number checks and the message log; sending lives in `send`.

mod body_view;
pub mod history;
pub(crate) mod send;
pub mod send_dto;
mod unversioned;
pub mod upload;
pub mod view;

pub use send::SendApi;
pub use unversioned::Unversioned;
pub use view::MessageView;

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::text::Text;
use crate::access::Scope;

use crate::messaging::history as messages_log;
use crate::messaging::{chat_list, timeline};
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CheckNumbers {
    /// Numbers as the send routes take them.
    #[oai(validator(
        min_items = 1,
        max_items = 50,
        max_length = 32,
        pattern = r"^\+?[0-9][0-9 ().-]{6,30}$"
    ))]
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

pub struct MessagesApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::Messages")]
impl MessagesApi {
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
    ///
    /// A message the instance sent or received, with its latest text,
    /// whether it was edited or deleted, and its reactions.
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
        messages_log::get(&self.state.db, &self.state.keyring, id.0, &message_id.0)
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
    /// Sent and received messages, newest first (by when the gateway
    /// recorded them), filtered by `chat` (a number, or a
    /// `…@s.whatsapp.net`, `…@lid` or `…@g.us` JID: a person's chat matches
    /// by number and LID), `direction`, `kind`, `status` (sent messages
    /// only) and `since` (inclusive) / `until` (exclusive), paged with
    /// `cursor`. Reactions, edits and deletions received show on the
    /// message they target. Deprecated: `after` pages sent messages oldest
    /// first, as this route did before.
    #[oai(
        path = "/v1/instances/:id/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_messages(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(
            max_length = 96,
            pattern = r"^(\+?[0-9]{6,20}|[0-9]{1,24}@(s\.whatsapp\.net|lid)|[0-9-]{1,64}@g\.us)$"
        ))]
        chat: Query<Option<String>>,
        direction: Query<Option<view::MessageDirection>>,
        kind: Query<Option<history::MessageKind>>,
        status: Query<Option<MessageStatus>>,
        since: Query<Option<DateTime<Utc>>>,
        until: Query<Option<DateTime<Utc>>>,
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$"))] cursor: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u64>>,
        #[oai(deprecated)] after: Query<Option<Uuid>>,
    ) -> Result<Json<history::MessagePage>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        let limit = super::page_limit(&self.state.settings.api, limit.0).min(200);
        let status = status.0.map(|s| match s {
            MessageStatus::Sent => "sent",
            MessageStatus::ServerAck => "server_ack",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Played => "played",
            MessageStatus::Failed => "failed",
        });
        let keyring = &self.state.keyring;
        if after.0.is_some() {
            let (rows, next) =
                messages_log::list(&self.state.db, id.0, status, after.0, limit).await?;
            return Ok(Json(history::MessagePage {
                items: rows
                    .into_iter()
                    .map(|m| messages_log::Stored::of_sent(keyring, m).into())
                    .collect(),
                next_cursor: None,
                next_after: next,
            }));
        }
        let filter = timeline::Filter {
            chat: chat.0.as_deref().map(timeline::ChatFilter::parse),
            direction: direction.0.map(Into::into),
            status,
            kinds: kind.0.map(history::MessageKind::stored),
            since: since.0,
            until: until.0,
            before: cursor
                .0
                .as_deref()
                .map(history::parse_message_cursor)
                .transpose()?,
        };
        let (rows, next) = timeline::list(&self.state.db, keyring, id.0, &filter, limit).await?;
        Ok(Json(history::MessagePage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next.map(history::message_cursor),
            next_after: None,
        }))
    }

    /// List chats
    ///
    /// Chats newest activity first, each with its last message and the
    /// number of received messages not marked read; paged with `cursor`.
    #[oai(
        path = "/v1/instances/:id/chats",
        method = "get",
        operation_id = "list_chats"
    )]
    async fn list_chats(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(
            min_length = 11,
            max_length = 400,
            pattern = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
        ))]
        cursor: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u64>>,
    ) -> Result<Json<history::ChatPage>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        let limit = super::page_limit(&self.state.settings.api, limit.0).min(200);
        let after = cursor
            .0
            .as_deref()
            .map(history::parse_chat_cursor)
            .transpose()?;
        let (chats, next) = chat_list::list(
            &self.state.db,
            &self.state.keyring,
            id.0,
            after.as_ref(),
            limit,
        )
        .await?;
        Ok(Json(history::ChatPage {
            items: chats.into_iter().map(Into::into).collect(),
            next_cursor: next.as_ref().map(history::chat_cursor),
        }))
    }
}
