//! `/v1/instances`: create, list, read, rename and delete instances.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::text::{self, Text};
use crate::access::Scope;
use crate::instances::{Instance, Status, store};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Created, never paired (or pairing gave up).
    Created,
    /// Waiting for a phone to scan the QR code.
    QrPending,
    /// Paired and connected to WhatsApp.
    Online,
    /// Paired, not connected right now.
    Disconnected,
    /// Unlinked from the phone. Terminal: create a new instance to pair again.
    LoggedOut,
}

impl From<Status> for InstanceStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Created => Self::Created,
            Status::QrPending => Self::QrPending,
            Status::Online => Self::Online,
            Status::Disconnected => Self::Disconnected,
            Status::LoggedOut => Self::LoggedOut,
        }
    }
}

impl From<InstanceStatus> for Status {
    fn from(s: InstanceStatus) -> Self {
        match s {
            InstanceStatus::Created => Self::Created,
            InstanceStatus::QrPending => Self::QrPending,
            InstanceStatus::Online => Self::Online,
            InstanceStatus::Disconnected => Self::Disconnected,
            InstanceStatus::LoggedOut => Self::LoggedOut,
        }
    }
}

/// A WhatsApp number managed by this gateway.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Instance")]
pub struct InstanceView {
    pub id: Uuid,
    pub name: Option<String>,
    pub status: InstanceStatus,
    /// E.164 digits of the paired number, once paired.
    pub phone_number: Option<String>,
    /// WhatsApp JID of the paired device, once paired.
    pub jid: Option<String>,
    pub is_connected: bool,
    pub last_connected_at: Option<DateTime<Utc>>,
    /// The reason of the last failure or status change, if any.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Incoming calls are rejected (each still emits `call.received`, then
    /// `call.rejected`).
    pub reject_calls: bool,
    /// Text sent to the caller after a rejected call.
    pub call_reply: Option<String>,
    /// Inbound messages are marked read once every webhook took their
    /// `message.received`.
    pub auto_read: bool,
    /// Group messages are dropped before they are recorded.
    pub ignore_groups: bool,
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Self {
            id: i.id,
            name: i.name,
            status: i.status.into(),
            phone_number: i.phone_number,
            jid: i.jid,
            is_connected: i.is_connected,
            last_connected_at: i.last_connected_at,
            last_error: i.last_error,
            created_at: i.created_at,
            updated_at: i.updated_at,
            reject_calls: i.reject_calls,
            call_reply: i.call_reply,
            auto_read: i.auto_read,
            ignore_groups: i.ignore_groups,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CreateInstance {
    /// A label for people; need not be unique.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct UpdateInstance {
    /// The new label; `null` removes it, absent leaves it as it is.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: MaybeUndefined<Text>,
    /// Reject incoming calls.
    pub reject_calls: Option<bool>,
    /// Text sent to a caller after a rejected call; `null` sends none.
    #[oai(validator(min_length = 1, max_length = 4096))]
    pub call_reply: MaybeUndefined<Text>,
    /// Mark inbound messages read once their webhooks took them.
    pub auto_read: Option<bool>,
    /// Drop group messages before they are recorded.
    pub ignore_groups: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InstancePage {
    pub items: Vec<InstanceView>,
    /// Pass as `after` to read the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

#[derive(ApiResponse)]
pub enum Created {
    #[oai(status = 201)]
    Created(Json<InstanceView>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// The instance and everything it owned are gone.
    #[oai(status = 204)]
    Deleted,
}

pub struct InstancesApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/v1/instances", tag = "ApiTags::Instances")]
impl InstancesApi {
    /// Create an instance
    ///
    /// A new instance starts in status `created`; pair it to a phone next.
    #[oai(path = "/", method = "post", operation_id = "create_instance")]
    async fn create(&self, auth: Auth, body: Json<CreateInstance>) -> Result<Created, ApiError> {
        auth.admin()?;
        let instance = store::create(&self.state.db, text::opt(body.0.name)).await?;
        tracing::info!(instance_id = %instance.id, "instance created");
        Ok(Created::Created(Json(instance.into())))
    }

    /// List instances
    ///
    /// Oldest first. Page with `limit` and the `next_after` of the previous page.
    #[oai(path = "/", method = "get", operation_id = "list_instances")]
    async fn list(
        &self,
        auth: Auth,
        /// Only instances in this status.
        status: Query<Option<InstanceStatus>>,
        /// Page size; more than the server's maximum (200 by default) is
        /// reduced to it.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
        limit: Query<Option<u64>>,
        /// Start after this instance id (a previous page's `next_after`).
        after: Query<Option<Uuid>>,
    ) -> Result<Json<InstancePage>, ApiError> {
        let limit = super::page_limit(&self.state.settings.api, limit.0);
        let page = store::list(
            &self.state.db,
            status.0.map(Into::into),
            auth.visible(Scope::Read),
            after.0,
            limit,
        )
        .await?;
        Ok(Json(InstancePage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_after: page.next_after,
        }))
    }

    /// Get an instance
    #[oai(path = "/:id", method = "get", operation_id = "get_instance")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> Result<Json<InstanceView>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        Ok(Json(store::get(&self.state.db, id.0).await?.into()))
    }

    /// Rename an instance or change its settings
    ///
    /// Absent fields stay as they are. `reject_calls` (with `call_reply`)
    /// `auto_read` and `ignore_groups` are off by default.
    #[oai(path = "/:id", method = "patch", operation_id = "update_instance")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<UpdateInstance>,
    ) -> Result<Json<InstanceView>, ApiError> {
        auth.instance(id.0, Scope::Manage)?;
        let body = body.0;
        let settings = store::Settings {
            reject_calls: body.reject_calls,
            call_reply: match body.call_reply {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(text) => Some(Some(text.0)),
            },
            auto_read: body.auto_read,
            ignore_groups: body.ignore_groups,
        };
        let mut instance = match body.name {
            MaybeUndefined::Undefined => store::get(&self.state.db, id.0).await?,
            MaybeUndefined::Null => store::rename(&self.state.db, id.0, None).await?,
            MaybeUndefined::Value(name) => {
                store::rename(&self.state.db, id.0, Some(name.0)).await?
            }
        };
        if !settings.is_empty() {
            instance = store::configure(&self.state.db, id.0, settings).await?;
        }
        Ok(Json(instance.into()))
    }

    /// Delete an instance
    ///
    /// Refused with 409 while the instance is online: log it out first.
    #[oai(path = "/:id", method = "delete", operation_id = "delete_instance")]
    async fn delete(&self, auth: Auth, id: Path<Uuid>) -> Result<Deleted, ApiError> {
        auth.instance(id.0, Scope::Manage)?;
        store::delete(&self.state.db, id.0).await?;
        tracing::info!(instance_id = %id.0, "instance deleted");
        Ok(Deleted::Deleted)
    }
}
