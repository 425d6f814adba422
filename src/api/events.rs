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
use crate::webhooks::ops::{self, Cursor, Event};

/// An event exactly as webhooks receive it, plus its id, position and
/// sequence.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Event")]
pub struct EventOut {
    /// `msg_…`: the `webhook-id` of its deliveries.
    pub id: String,
    /// Its place among the instance's events: from 1, without gaps, in the
    /// order their changes committed. A cursor.
    pub position: i64,
    /// Its place among all instances' events: from 1, without gaps, in
    /// commit order. The cursor of the all-instances stream.
    pub sequence: i64,
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
            position: e.position,
            sequence: e.sequence,
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
    /// The last event's position: pass it as `after` to continue. Absent
    /// when this page is not full.
    pub next_after: Option<String>,
}

pub struct EventsApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/v1/instances", tag = "ApiTags::Events")]
impl EventsApi {
    /// Read events by cursor
    ///
    /// The instance's events in the order their changes committed, after
    /// the cursor `after` (from the start when absent). A receiver that was
    /// down reads what it missed here without waiting for retries; a poller
    /// that passes back `next_after` sees every event once, in order.
    #[oai(path = "/:id/events", method = "get", operation_id = "list_events")]
    async fn list(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        /// A position, or an event id (`msg_…`); only events after it are
        /// returned. An event id that retention already removed stands just
        /// before the first later event.
        #[oai(validator(pattern = r"^([0-9]{1,18}|msg_[0-9a-f]{32})$"))]
        after: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))] limit: Query<
            Option<u64>,
        >,
    ) -> Result<Json<EventPage>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        let limit = super::page_limit(&self.state.settings.api, limit.0);
        let after = match after.0 {
            Some(text) => Some(text.parse::<Cursor>().map_err(|()| {
                ApiError::bad_request("invalid_cursor", "`after` is not a position or an event id")
            })?),
            None => None,
        };
        let items = ops::list_events(
            &self.state.db,
            &self.state.webhooks,
            id.0,
            after.as_ref(),
            limit,
        )
        .await?;
        let next_after = if items.len() as u64 == limit {
            items.last().map(|e| e.position.to_string())
        } else {
            None
        };
        Ok(Json(EventPage {
            items: items.into_iter().map(Into::into).collect(),
            next_after,
        }))
    }
}
