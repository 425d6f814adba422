//! `/v1/instances/{id}/webhooks`: registrations, secrets, deliveries,
//! attempts, replay, recover and test events.

use chrono::{DateTime, Utc};
use entity::webhook_deliveries::Status;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::text::{self, Text};
use crate::access;
use crate::outbound::Targets;
use crate::state::AppState;
use crate::webhooks::ops::{self, Attempt, DeliveryView};
use crate::webhooks::registry::{self, Changes, Scope, Webhook};

/// A registered receiver of one instance's events. The secret is not part
/// of it: read it with the `secret` endpoint.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Webhook")]
pub struct WebhookView {
    pub id: Uuid,
    /// Absent for a global webhook (it receives every instance's events).
    pub instance_id: Option<Uuid>,
    pub url: String,
    /// Event types it receives; empty means all.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Deliveries go one at a time, in event order.
    pub ordered: bool,
    /// Why it was disabled (410, failing too long, or through the API).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Start of the current run of failed attempts, if failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// While set, the previous secret signs deliveries too.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        let events = w
            .events
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let rotating = w.previous_secret_expires_at.filter(|t| *t > Utc::now());
        Self {
            id: w.id,
            instance_id: w.instance_id,
            url: w.url,
            events,
            description: w.description,
            enabled: w.enabled,
            ordered: w.ordered,
            disabled_reason: w.disabled_reason,
            disabled_at: w.disabled_at,
            failing_since: w.failing_since,
            previous_secret_expires_at: rotating,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A webhook as created: with its signing secret, shown here and by the
/// `secret` endpoint only.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedWebhook {
    #[oai(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` + base64 of the HMAC-SHA256 key.
    pub secret: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookSecret {
    /// The current secret: `whsec_` + base64 of the HMAC-SHA256 key.
    pub secret: String,
    /// The previous secret while it still signs (after a rotation).
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<registry::Secrets> for WebhookSecret {
    fn from(s: registry::Secrets) -> Self {
        Self {
            secret: s.secret,
            previous_secret: s.previous_secret,
            previous_secret_expires_at: s.previous_secret_expires_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CreateWebhook {
    /// An absolute http or https URL.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Text,
    /// Event types to receive; absent or empty means all.
    pub events: Option<Vec<Text>>,
    #[oai(validator(max_length = 500))]
    pub description: Option<Text>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Deliver one at a time in event order. Default false.
    pub ordered: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct UpdateWebhook {
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Option<Text>,
    /// Event types to receive; empty means all.
    pub events: Option<Vec<Text>>,
    /// `null` removes it.
    #[oai(validator(max_length = 500))]
    pub description: MaybeUndefined<Text>,
    /// Re-enabling clears the disabled reason and the failure clock; follow
    /// it with `recover` to resend what failed meanwhile.
    pub enabled: Option<bool>,
    pub ordered: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt at `next_attempt_at`.
    Pending,
    /// Being attempted now.
    Delivering,
    Succeeded,
    /// Failed in a way retries cannot fix (4xx other than 408/429, 410, a
    /// refused target); replay or recover to send again.
    Failed,
    /// Every scheduled attempt failed.
    Dead,
}

impl From<Status> for DeliveryStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => Self::Pending,
            Status::Delivering => Self::Delivering,
            Status::Succeeded => Self::Succeeded,
            Status::Failed => Self::Failed,
            Status::Dead => Self::Dead,
        }
    }
}

impl From<DeliveryStatus> for Status {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivering => Self::Delivering,
            DeliveryStatus::Succeeded => Self::Succeeded,
            DeliveryStatus::Failed => Self::Failed,
            DeliveryStatus::Dead => Self::Dead,
        }
    }
}

/// One event owed to one webhook.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Delivery")]
pub struct DeliveryOut {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The event id; also the `webhook-id` header of every attempt.
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts since creation or the last replay.
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DeliveryView> for DeliveryOut {
    fn from(v: DeliveryView) -> Self {
        let d = v.delivery;
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: v.event_type,
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: (d.status == Status::Pending).then_some(d.next_attempt_at),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryOut>,
    /// Pass as `after` to read the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

/// One HTTP request made for a delivery.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Attempt")]
pub struct AttemptOut {
    pub id: Uuid,
    /// 1 for the first attempt since creation or the last replay.
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    /// The response body, truncated.
    pub response_body: Option<String>,
    /// `timeout`, `connect`, `blocked`, `redirect`, `status`, `request`,
    /// `invalid_url`, `signing` or `secret_unavailable` (no configured key
    /// opens the stored secret); absent on success.
    pub error_kind: Option<String>,
    pub error: Option<String>,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            response_body: a.response_body,
            error_kind: a.error_kind,
            error: a.error,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AttemptList {
    pub items: Vec<AttemptOut>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TestSent {
    /// The `webhook.test` event recorded for this webhook.
    pub event_id: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Recovered {
    /// How many failed or dead deliveries are pending again.
    pub recovered: u64,
}

#[derive(ApiResponse)]
pub enum CreatedResp {
    #[oai(status = 201)]
    Created(Json<CreatedWebhook>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// The webhook and its deliveries are gone.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum Accepted<T: poem_openapi::types::ToJSON + Send + Sync> {
    /// Recorded; the dispatcher sends it now.
    #[oai(status = 202)]
    Accepted(Json<T>),
}

/// The work behind each webhook route, shared by the per-instance routes
/// here and the global ones in `global_webhooks.rs`.
pub(super) struct Handlers<'a> {
    pub state: &'a AppState,
    pub scope: Scope,
}

impl Handlers<'_> {
    fn targets(&self) -> Targets {
        Targets::from_settings(&self.state.settings)
    }

    pub async fn create(&self, b: CreateWebhook) -> Result<CreatedResp, ApiError> {
        let changes = Changes {
            url: Some(b.url.0),
            events: b.events.map(text::list),
            description: Some(text::opt(b.description)),
            enabled: b.enabled,
            ordered: b.ordered,
        };
        let (w, secret) = registry::create(
            &self.state.db,
            &self.state.keyring,
            self.scope,
            changes,
            &self.targets(),
        )
        .await?;
        tracing::info!(scope = ?self.scope, webhook_id = %w.id, "webhook registered");
        Ok(CreatedResp::Created(Json(CreatedWebhook {
            webhook: w.into(),
            secret,
        })))
    }

    pub async fn list(&self) -> Result<Json<WebhookList>, ApiError> {
        let items = registry::list(&self.state.db, self.scope).await?;
        Ok(Json(WebhookList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    pub async fn get(&self, webhook_id: Uuid) -> Result<Json<WebhookView>, ApiError> {
        Ok(Json(
            registry::get(&self.state.db, self.scope, webhook_id)
                .await?
                .into(),
        ))
    }

    pub async fn update(
        &self,
        webhook_id: Uuid,
        b: UpdateWebhook,
    ) -> Result<Json<WebhookView>, ApiError> {
        let description = match b.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d.0)),
        };
        let changes = Changes {
            url: text::opt(b.url),
            events: b.events.map(text::list),
            description,
            enabled: b.enabled,
            ordered: b.ordered,
        };
        let w = registry::update(
            &self.state.db,
            self.scope,
            webhook_id,
            changes,
            &self.targets(),
        )
        .await?;
        Ok(Json(w.into()))
    }

    pub async fn delete(&self, webhook_id: Uuid) -> Result<Deleted, ApiError> {
        registry::delete(&self.state.db, self.scope, webhook_id).await?;
        tracing::info!(scope = ?self.scope, %webhook_id, "webhook deleted");
        Ok(Deleted::Deleted)
    }

    pub async fn secret(&self, webhook_id: Uuid) -> Result<Json<WebhookSecret>, ApiError> {
        let w = registry::get(&self.state.db, self.scope, webhook_id).await?;
        Ok(Json(registry::secrets(&self.state.keyring, &w)?.into()))
    }

    pub async fn rotate(
        &self,
        webhook_id: Uuid,
        overlap_secs: Option<u64>,
    ) -> Result<Json<WebhookSecret>, ApiError> {
        let overlap = overlap_secs.unwrap_or(self.state.settings.webhooks.rotation_overlap_secs);
        let (w, secrets) = registry::rotate_secret(
            &self.state.db,
            &self.state.keyring,
            self.scope,
            webhook_id,
            overlap,
        )
        .await?;
        tracing::info!(webhook_id = %w.id, overlap_secs = overlap, "webhook secret rotated");
        Ok(Json(secrets.into()))
    }

    pub async fn recover(
        &self,
        webhook_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Accepted<Recovered>, ApiError> {
        let n = ops::recover(&self.state.db, self.scope, webhook_id, since).await?;
        self.state.webhooks.wake();
        Ok(Accepted::Accepted(Json(Recovered { recovered: n })))
    }

    pub async fn deliveries(
        &self,
        webhook_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: Option<u64>,
        after: Option<Uuid>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        let limit = super::page_limit(&self.state.settings.api, limit);
        let (items, next_after) = ops::list_deliveries(
            &self.state.db,
            self.scope,
            webhook_id,
            status.map(Into::into),
            after,
            limit,
        )
        .await?;
        Ok(Json(DeliveryPage {
            items: items.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }

    pub async fn delivery(
        &self,
        webhook_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<Json<DeliveryOut>, ApiError> {
        let d = ops::get_delivery(&self.state.db, self.scope, webhook_id, delivery_id).await?;
        Ok(Json(d.into()))
    }

    pub async fn attempts(
        &self,
        webhook_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<Json<AttemptList>, ApiError> {
        let items = ops::list_attempts(&self.state.db, self.scope, webhook_id, delivery_id).await?;
        Ok(Json(AttemptList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    pub async fn replay(
        &self,
        webhook_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<Accepted<DeliveryOut>, ApiError> {
        let d = ops::replay(&self.state.db, self.scope, webhook_id, delivery_id).await?;
        self.state.webhooks.wake();
        Ok(Accepted::Accepted(Json(d.into())))
    }
}

pub struct WebhooksApi {
    pub state: AppState,
}

impl WebhooksApi {
    fn on(&self, instance_id: Uuid) -> Handlers<'_> {
        Handlers {
            state: &self.state,
            scope: Scope::Instance(instance_id),
        }
    }
}

#[OpenApi(prefix_path = "/v1/instances", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Register a webhook
    ///
    /// The response carries the signing secret.
    #[oai(
        path = "/:id/webhooks",
        method = "post",
        operation_id = "create_webhook"
    )]
    async fn create(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<CreateWebhook>,
    ) -> Result<CreatedResp, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).create(body.0).await
    }

    /// List an instance's webhooks
    ///
    /// The instance's own webhooks; global webhooks are listed at `/v1/webhooks`.
    #[oai(path = "/:id/webhooks", method = "get", operation_id = "list_webhooks")]
    async fn list(&self, auth: Auth, id: Path<Uuid>) -> Result<Json<WebhookList>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).list().await
    }

    /// Get a webhook
    #[oai(
        path = "/:id/webhooks/:webhook_id",
        method = "get",
        operation_id = "get_webhook"
    )]
    async fn get(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> Result<Json<WebhookView>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).get(webhook_id.0).await
    }

    /// Change a webhook
    #[oai(
        path = "/:id/webhooks/:webhook_id",
        method = "patch",
        operation_id = "update_webhook"
    )]
    async fn update(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        body: Json<UpdateWebhook>,
    ) -> Result<Json<WebhookView>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).update(webhook_id.0, body.0).await
    }

    /// Delete a webhook
    #[oai(
        path = "/:id/webhooks/:webhook_id",
        method = "delete",
        operation_id = "delete_webhook"
    )]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).delete(webhook_id.0).await
    }

    /// Reveal a webhook's secret
    #[oai(
        path = "/:id/webhooks/:webhook_id/secret",
        method = "get",
        operation_id = "get_webhook_secret"
    )]
    async fn secret(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> Result<Json<WebhookSecret>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).secret(webhook_id.0).await
    }

    /// Rotate a webhook's secret
    ///
    /// A new secret signs from now on; for `overlap_secs` (default from the
    /// configuration, 24 h) the old one signs too, so receivers can switch
    /// without missing a delivery.
    #[oai(
        path = "/:id/webhooks/:webhook_id/rotate-secret",
        method = "post",
        operation_id = "rotate_webhook_secret"
    )]
    async fn rotate(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        /// Seconds the old secret keeps signing; 0 retires it at once.
        #[oai(validator(minimum(value = "0"), maximum(value = "2592000")))]
        overlap_secs: Query<Option<u64>>,
    ) -> Result<Json<WebhookSecret>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).rotate(webhook_id.0, overlap_secs.0).await
    }

    /// Send a test event
    ///
    /// Records a `webhook.test` event for this webhook alone.
    #[oai(
        path = "/:id/webhooks/:webhook_id/test",
        method = "post",
        operation_id = "test_webhook"
    )]
    async fn test(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> Result<Accepted<TestSent>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        let event_id =
            ops::send_test(&self.state.db, &self.state.webhooks, id.0, webhook_id.0).await?;
        Ok(Accepted::Accepted(Json(TestSent { event_id })))
    }

    /// Recover failed and dead deliveries
    ///
    /// Every failed or dead delivery of this webhook created at or after
    /// `since` is sent again with a fresh retry schedule.
    #[oai(
        path = "/:id/webhooks/:webhook_id/recover",
        method = "post",
        operation_id = "recover_webhook"
    )]
    async fn recover(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        /// RFC 3339 time.
        since: Query<DateTime<Utc>>,
    ) -> Result<Accepted<Recovered>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).recover(webhook_id.0, since.0).await
    }

    /// List deliveries
    ///
    /// Oldest first. Page with `limit` and the `next_after` of the previous page.
    #[oai(
        path = "/:id/webhooks/:webhook_id/deliveries",
        method = "get",
        operation_id = "list_deliveries"
    )]
    async fn deliveries(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        /// Only deliveries in this status.
        status: Query<Option<DeliveryStatus>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))] limit: Query<
            Option<u64>,
        >,
        after: Query<Option<Uuid>>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0)
            .deliveries(webhook_id.0, status.0, limit.0, after.0)
            .await
    }

    /// Get a delivery
    #[oai(
        path = "/:id/webhooks/:webhook_id/deliveries/:delivery_id",
        method = "get",
        operation_id = "get_delivery"
    )]
    async fn delivery(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Json<DeliveryOut>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).delivery(webhook_id.0, delivery_id.0).await
    }

    /// List a delivery's attempts
    #[oai(
        path = "/:id/webhooks/:webhook_id/deliveries/:delivery_id/attempts",
        method = "get",
        operation_id = "list_attempts"
    )]
    async fn attempts(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Json<AttemptList>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).attempts(webhook_id.0, delivery_id.0).await
    }

    /// Replay a delivery
    ///
    /// Sends it again now with a fresh retry schedule, whatever its status
    /// (one being attempted right now is left alone).
    #[oai(
        path = "/:id/webhooks/:webhook_id/deliveries/:delivery_id/replay",
        method = "post",
        operation_id = "replay_delivery"
    )]
    async fn replay(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Accepted<DeliveryOut>, ApiError> {
        auth.instance(id.0, access::Scope::Webhooks)?;
        self.on(id.0).replay(webhook_id.0, delivery_id.0).await
    }
}
