//! `/v1/instances/{id}/events`: catch-up by cursor.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use crate::access::Scope;
use crate::state::AppState;
use crate::webhooks::ops::{self, Event};

/// An event exactly as webhooks receive it, plus its id.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Event")]
pub struct EventOut {
    /// `msg_…`: the `webhook-id` of its deliveries, and the cursor.
    pub id: String,
    #[oai(rename = "type")]
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub instance_id: Uuid,
    pub data: serde_json::Value,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            timestamp: e.created_at,
            instance_id: e.instance_id,
            data: e.data,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventPage {
    pub items: Vec<EventOut>,
    /// Pass as `after` to continue; absent when this page is not full.
    pub next_after: Option<String>,
}

pub struct EventsApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/v1/instances", tag = "ApiTags::Events")]
impl EventsApi {
    /// Read events by cursor
    ///
    /// The instance's events in the order they happened, after the event id
    /// `after` (from the start when absent). A receiver that was down reads
    /// what it missed here without waiting for retries.
    #[oai(path = "/:id/events", method = "get", operation_id = "list_events")]
    async fn list(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        /// An event id; only later events are returned.
        #[oai(validator(max_length = 40))]
        after: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))] limit: Query<
            Option<u64>,
        >,
    ) -> Result<Json<EventPage>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        let limit = super::page_limit(&self.state.settings.api, limit.0);
        let items = ops::list_events(&self.state.db, id.0, after.0, limit).await?;
        let next_after = if items.len() as u64 == limit {
            items.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(Json(EventPage {
            items: items.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }
}
