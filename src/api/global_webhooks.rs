//! `/v1/webhooks`: global webhooks, which receive every instance's events.
//! The same operations as an instance's webhooks, without the instance.

use chrono::{DateTime, Utc};
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::webhooks::Handlers;
use super::webhooks::dto::{
    Accepted, AttemptList, CreateWebhook, CreatedResp, Deleted, DeliveryOut, DeliveryPage,
    DeliveryStatus, Recovered, UpdateWebhook, WebhookList, WebhookSecret, WebhookView,
};
use crate::state::AppState;
use crate::webhooks::registry::Scope;

pub struct GlobalWebhooksApi {
    pub state: AppState,
}

impl GlobalWebhooksApi {
    fn global(&self) -> Handlers<'_> {
        Handlers {
            state: &self.state,
            scope: Scope::Global,
        }
    }
}

#[OpenApi(prefix_path = "/v1/webhooks", tag = "ApiTags::GlobalWebhooks")]
impl GlobalWebhooksApi {
    /// Register a global webhook
    ///
    /// It receives the events of every instance. The response carries the
    /// signing secret.
    #[oai(path = "/", method = "post", operation_id = "create_global_webhook")]
    async fn create(&self, auth: Auth, body: Json<CreateWebhook>) -> Result<CreatedResp, ApiError> {
        auth.admin()?;
        self.global().create(body.0).await
    }

    /// List global webhooks
    #[oai(path = "/", method = "get", operation_id = "list_global_webhooks")]
    async fn list(&self, auth: Auth) -> Result<Json<WebhookList>, ApiError> {
        auth.admin()?;
        self.global().list().await
    }

    /// Get a global webhook
    #[oai(
        path = "/:webhook_id",
        method = "get",
        operation_id = "get_global_webhook"
    )]
    async fn get(&self, auth: Auth, webhook_id: Path<Uuid>) -> Result<Json<WebhookView>, ApiError> {
        auth.admin()?;
        self.global().get(webhook_id.0).await
    }

    /// Change a global webhook
    #[oai(
        path = "/:webhook_id",
        method = "patch",
        operation_id = "update_global_webhook"
    )]
    async fn update(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        body: Json<UpdateWebhook>,
    ) -> Result<Json<WebhookView>, ApiError> {
        auth.admin()?;
        self.global().update(webhook_id.0, body.0).await
    }

    /// Delete a global webhook
    #[oai(
        path = "/:webhook_id",
        method = "delete",
        operation_id = "delete_global_webhook"
    )]
    async fn delete(&self, auth: Auth, webhook_id: Path<Uuid>) -> Result<Deleted, ApiError> {
        auth.admin()?;
        self.global().delete(webhook_id.0).await
    }

    /// Reveal a global webhook's secret
    #[oai(
        path = "/:webhook_id/secret",
        method = "get",
        operation_id = "get_global_webhook_secret"
    )]
    async fn secret(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
    ) -> Result<Json<WebhookSecret>, ApiError> {
        auth.admin()?;
        self.global().secret(webhook_id.0).await
    }

    /// Rotate a global webhook's secret
    #[oai(
        path = "/:webhook_id/rotate-secret",
        method = "post",
        operation_id = "rotate_global_webhook_secret"
    )]
    async fn rotate(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        /// Seconds the old secret keeps signing; 0 retires it at once.
        #[oai(validator(minimum(value = "0"), maximum(value = "2592000")))]
        overlap_secs: Query<Option<u64>>,
    ) -> Result<Json<WebhookSecret>, ApiError> {
        auth.admin()?;
        self.global().rotate(webhook_id.0, overlap_secs.0).await
    }

    /// Recover a global webhook's failed and dead deliveries
    #[oai(
        path = "/:webhook_id/recover",
        method = "post",
        operation_id = "recover_global_webhook"
    )]
    async fn recover(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        /// RFC 3339 time.
        since: Query<DateTime<Utc>>,
    ) -> Result<Accepted<Recovered>, ApiError> {
        auth.admin()?;
        self.global().recover(webhook_id.0, since.0).await
    }

    /// List a global webhook's deliveries
    #[oai(
        path = "/:webhook_id/deliveries",
        method = "get",
        operation_id = "list_global_deliveries"
    )]
    async fn deliveries(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        /// Only deliveries in this status.
        status: Query<Option<DeliveryStatus>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))] limit: Query<
            Option<u64>,
        >,
        after: Query<Option<Uuid>>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        auth.admin()?;
        self.global()
            .deliveries(webhook_id.0, status.0, limit.0, after.0)
            .await
    }

    /// Get a global webhook's delivery
    #[oai(
        path = "/:webhook_id/deliveries/:delivery_id",
        method = "get",
        operation_id = "get_global_delivery"
    )]
    async fn delivery(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Json<DeliveryOut>, ApiError> {
        auth.admin()?;
        self.global().delivery(webhook_id.0, delivery_id.0).await
    }

    /// List a global webhook's delivery attempts
    #[oai(
        path = "/:webhook_id/deliveries/:delivery_id/attempts",
        method = "get",
        operation_id = "list_global_attempts"
    )]
    async fn attempts(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Json<AttemptList>, ApiError> {
        auth.admin()?;
        self.global().attempts(webhook_id.0, delivery_id.0).await
    }

    /// Replay a global webhook's delivery
    #[oai(
        path = "/:webhook_id/deliveries/:delivery_id/replay",
        method = "post",
        operation_id = "replay_global_delivery"
    )]
    async fn replay(
        &self,
        auth: Auth,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> Result<Accepted<DeliveryOut>, ApiError> {
        auth.admin()?;
        self.global().replay(webhook_id.0, delivery_id.0).await
    }
}
