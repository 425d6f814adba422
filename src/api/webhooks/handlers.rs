//! The work behind each webhook route, the same for an instance's webhooks
//! and the global ones: the routes differ only in scope and authorisation.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use uuid::Uuid;

use super::dto::{
    Accepted, AttemptList, CreateWebhook, CreatedResp, CreatedWebhook, Deleted, DeliveryOut,
    DeliveryPage, DeliveryStatus, Recovered, UpdateWebhook, WebhookList, WebhookSecret,
    WebhookView,
};
use super::sink_dto;
use crate::api::error::ApiError;
use crate::api::text;
use crate::outbound::Targets;
use crate::state::AppState;
use crate::webhooks::ops;
use crate::webhooks::registry::{self, Changes, Scope};

/// The work behind each webhook route, shared by the per-instance routes
/// here and the global ones in `global_webhooks.rs`.
pub(in crate::api) struct Handlers<'a> {
    pub state: &'a AppState,
    pub scope: Scope,
}

impl Handlers<'_> {
    fn targets(&self) -> Targets {
        Targets::from_settings(&self.state.settings)
    }

    /// The stored webhook with what this node's dispatcher knows of it.
    fn view(&self, w: registry::Webhook) -> WebhookView {
        let limit = self.state.webhooks.concurrency_limit(w.id);
        WebhookView {
            concurrency_limit: limit.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            ..WebhookView::from(w)
        }
    }

    pub async fn create(&self, b: CreateWebhook) -> Result<CreatedResp, ApiError> {
        let sink = sink_dto::spec(b.nats, b.amqp)?;
        let kind = b
            .kind
            .map(Into::into)
            .or_else(|| sink.as_ref().map(|s| s.target.kind()));
        let changes = Changes {
            url: b.url.map(String::from),
            events: b.events.map(|e| e.into_iter().map(String::from).collect()),
            description: Some(text::opt(b.description)),
            enabled: b.enabled,
            ordered: b.ordered,
            kind,
            sink,
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
            webhook: self.view(w),
            secret,
        })))
    }

    pub async fn list(&self) -> Result<Json<WebhookList>, ApiError> {
        let items = registry::list(&self.state.db, self.scope).await?;
        Ok(Json(WebhookList {
            items: items.into_iter().map(|w| self.view(w)).collect(),
        }))
    }

    pub async fn get(&self, webhook_id: Uuid) -> Result<Json<WebhookView>, ApiError> {
        Ok(Json(self.view(
            registry::get(&self.state.db, self.scope, webhook_id).await?,
        )))
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
            url: b.url.map(String::from),
            events: b.events.map(|e| e.into_iter().map(String::from).collect()),
            description,
            enabled: b.enabled,
            ordered: b.ordered,
            kind: None,
            sink: sink_dto::change(b.nats, b.amqp)?,
        };
        let w = registry::update(
            &self.state.db,
            &self.state.keyring,
            self.scope,
            webhook_id,
            changes,
            &self.targets(),
        )
        .await?;
        Ok(Json(self.view(w)))
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
        let limit = crate::api::page_limit(&self.state.settings.api, limit);
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
