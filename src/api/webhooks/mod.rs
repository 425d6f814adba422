//! `/v1/instances/{id}/webhooks`: registrations, secrets, deliveries,
//! attempts, replay, recover and test events.

pub mod dto;
mod handlers;
pub mod sink_dto;

use chrono::{DateTime, Utc};
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use crate::access;
use crate::state::AppState;
use crate::webhooks::ops;
use crate::webhooks::registry::Scope;
use dto::{
    Accepted, AttemptList, CreateWebhook, CreatedResp, Deleted, DeliveryOut, DeliveryPage,
    DeliveryStatus, Recovered, TestSent, UpdateWebhook, WebhookList, WebhookSecret, WebhookView,
};
pub(super) use handlers::Handlers;

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
