//! Live event streams over Server-Sent Events: one instance's events, or
//! every instance the key may read. Replay from a cursor, then live.

use std::collections::HashSet;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use poem::web::sse::Event as SseEvent;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::EventStream;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::events::EventOut;
use crate::access::{Principal, Scope};
use crate::state::AppState;
use crate::streams::{Selection, Start, StillAllowed};
use crate::webhooks::EventType;

#[derive(ApiResponse)]
pub enum Stream {
    /// `text/event-stream`: each event has `id` (the event's `position` on
    /// an instance's stream, its `sequence` on the all-instances stream),
    /// `event` (its type) and `data` (the event as JSON). Comment lines are
    /// heartbeats.
    #[oai(status = 200)]
    Open(EventStream<BoxStream<'static, EventOut>>),
}

pub struct StreamApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::Events")]
impl StreamApi {
    /// Stream an instance's events (SSE)
    ///
    /// Replays the events after `Last-Event-ID` (or `after`) from the
    /// outbox, then sends new ones as they commit, with no gap and no
    /// duplicate in between. Without a cursor only new events are sent.
    /// A revoked key ends the stream.
    #[oai(
        path = "/v1/instances/:id/events/stream",
        method = "get",
        operation_id = "stream_instance_events"
    )]
    async fn instance(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        /// A position or an event id (`msg_…`); events after it are sent
        /// first. `Last-Event-ID` wins when both are given.
        #[oai(validator(pattern = r"^([0-9]{1,18}|msg_[0-9a-f]{32})$"))]
        after: Query<Option<String>>,
        #[oai(
            name = "Last-Event-ID",
            validator(pattern = r"^([0-9]{1,18}|msg_[0-9a-f]{32})$")
        )]
        last_event_id: Header<Option<String>>,
        /// Comma-separated event types to send (all when absent).
        #[oai(validator(pattern = r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$"))]
        types: Query<Option<String>>,
    ) -> Result<Stream, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        let selection = Selection {
            instances: Some(HashSet::from([id.0])),
            types: parse_types(types.0.as_deref())?,
        };
        let start = start(last_event_id.0.or(after.0))?;
        self.open(auth.principal(), Some(id.0), selection, start, |e| {
            e.position.to_string()
        })
        .await
    }

    /// Stream every instance's events (SSE)
    ///
    /// The events of every instance the key may read (all, for the admin
    /// key), as they commit. Each event's SSE `id` is its `sequence`: its
    /// place among all instances' events, gapless and in commit order.
    /// `Last-Event-ID` (or `after`) is a sequence, or an event id (`msg_…`)
    /// standing for its sequence: the events after it are replayed first,
    /// then new ones follow, none missed or doubled even when an event of
    /// one instance commits after a later-recorded one of another.
    /// A revoked key ends the stream.
    #[oai(
        path = "/v1/events/stream",
        method = "get",
        operation_id = "stream_events"
    )]
    async fn all(
        &self,
        auth: Auth,
        /// A sequence or an event id (`msg_…`); events after it are sent
        /// first. `Last-Event-ID` wins when both are given.
        #[oai(validator(pattern = r"^([0-9]{1,18}|msg_[0-9a-f]{32})$"))]
        after: Query<Option<String>>,
        #[oai(
            name = "Last-Event-ID",
            validator(pattern = r"^([0-9]{1,18}|msg_[0-9a-f]{32})$")
        )]
        last_event_id: Header<Option<String>>,
        /// Comma-separated event types to send (all when absent).
        #[oai(validator(pattern = r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$"))]
        types: Query<Option<String>>,
    ) -> Result<Stream, ApiError> {
        let selection = Selection {
            instances: auth
                .visible(Scope::Read)
                .map(|ids| ids.into_iter().collect()),
            types: parse_types(types.0.as_deref())?,
        };
        let start = start(last_event_id.0.or(after.0))?;
        self.open(auth.principal(), None, selection, start, |e| {
            e.sequence.to_string()
        })
        .await
    }
}

/// Where a cursor starts a stream.
fn start(cursor: Option<String>) -> Result<Start, ApiError> {
    Ok(match cursor {
        None => Start::Now,
        Some(cursor) if cursor.starts_with("msg_") => Start::EventId(cursor),
        Some(cursor) => {
            Start::After(cursor.parse().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "the cursor is not a number")
            })?)
        }
    })
}

impl StreamApi {
    async fn open(
        &self,
        principal: &Principal,
        instance: Option<Uuid>,
        selection: Selection,
        start: Start,
        id_of: fn(&EventOut) -> String,
    ) -> Result<Stream, ApiError> {
        let heartbeat = self.state.settings.streams.heartbeat();
        let events = crate::streams::open(
            self.state.db.clone(),
            &self.state.webhooks,
            instance,
            selection,
            start,
            heartbeat,
            still_allowed(&self.state, principal),
        )
        .await?;
        let stream = futures_util::stream::unfold(events, |mut rx| async move {
            rx.recv().await.map(|event| (EventOut::from(event), rx))
        })
        .boxed();
        Ok(Stream::Open(
            EventStream::new(stream)
                .keep_alive(heartbeat)
                .to_event(move |event| {
                    SseEvent::message(event.to_json_string())
                        .event_type(event.event_type.clone())
                        .id(id_of(&event))
                }),
        ))
    }
}

/// A scoped key is looked up again at every heartbeat: once revoked (or
/// unreadable), the stream ends.
fn still_allowed(state: &AppState, principal: &Principal) -> StillAllowed {
    match principal {
        Principal::Admin => Box::new(|| Box::pin(async { true })),
        Principal::Scoped(grant) => {
            let key_id = grant.key_id;
            let db = state.db.clone();
            Box::new(move || {
                let db = db.clone();
                Box::pin(async move {
                    crate::access::keys::exists(&db, key_id)
                        .await
                        .unwrap_or(false)
                })
            })
        }
    }
}

fn parse_types(types: Option<&str>) -> Result<Option<HashSet<String>>, ApiError> {
    let Some(types) = types else {
        return Ok(None);
    };
    types
        .split(',')
        .map(|t| {
            EventType::parse(t)
                .map(|t| t.as_str().to_owned())
                .ok_or_else(|| {
                    ApiError::new(
                        poem::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "unknown_event_type",
                        format!("unknown event type `{t}`"),
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}
