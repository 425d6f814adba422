//! Number checks and the message log; sending lives in `send`.

pub(crate) mod send;
pub mod send_dto;
mod unversioned;
pub mod upload;
pub mod view;

pub use send::SendApi;
pub use unversioned::Unversioned;
pub use view::MessageView;

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
use crate::messaging::history;
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

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<Uuid>,
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
        history::get(&self.state.db, &self.state.keyring, id.0, &message_id.0)
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
            items: rows
                .into_iter()
                .map(|m| history::Stored::of_sent(&self.state.keyring, m).into())
                .collect(),
            next_after: next,
        }))
    }
}
