//! The request and response shapes of the webhook routes, shared by the
//! per-instance and the global ones.

use chrono::{DateTime, Utc};
use entity::webhook_deliveries::Status;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{MaybeUndefined, ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};
use serde_json::Value;
use std::borrow::Cow;
use uuid::Uuid;

use super::sink_dto::{self, SinkAmqp, SinkAmqpView, SinkKind, SinkNats, SinkNatsView};
use crate::api::text::{Text, Uri};
use crate::webhooks::events::EventType;
use crate::webhooks::ops::{Attempt, DeliveryView};
use crate::webhooks::registry::{self, Webhook};

/// A registered receiver of one instance's events: an HTTP webhook or a
/// broker sink. The secret is not part of it: read it with the `secret`
/// endpoint; a sink's credentials are never shown.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "Webhook")]
pub struct WebhookView {
    pub id: Uuid,
    /// Absent for a global webhook (it receives every instance's events).
    pub instance_id: Option<Uuid>,
    pub kind: SinkKind,
    /// The webhook URL, or a sink's broker URL.
    pub url: String,
    /// A NATS sink's target.
    pub nats: Option<SinkNatsView>,
    /// An AMQP sink's target.
    pub amqp: Option<SinkAmqpView>,
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
    /// Requests this node's dispatcher currently lets run at once to this
    /// webhook: it adapts to how the endpoint answers (see the README).
    /// Absent when no dispatcher runs on this node.
    #[oai(validator(minimum(value = "1")))]
    pub concurrency_limit: Option<u32>,
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
        let (kind, nats, amqp) =
            sink_dto::view(&w.kind, w.target.as_ref(), w.credentials.is_some());
        Self {
            id: w.id,
            instance_id: w.instance_id,
            kind,
            url: w.url,
            nats,
            amqp,
            events,
            description: w.description,
            enabled: w.enabled,
            ordered: w.ordered,
            disabled_reason: w.disabled_reason,
            disabled_at: w.disabled_at,
            failing_since: w.failing_since,
            previous_secret_expires_at: rotating,
            concurrency_limit: None,
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

/// An event type a webhook subscribes to; the document lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventName(pub EventType);

impl From<EventName> for String {
    fn from(e: EventName) -> Self {
        e.0.as_str().to_owned()
    }
}

impl Type for EventName {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "EventType".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            enum_items: EventType::ALL
                .iter()
                .map(|t| Value::from(t.as_str()))
                .collect(),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for EventName {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => EventType::parse(&s)
                .map(EventName)
                .ok_or_else(|| ParseError::custom(format!("unknown event type `{s}`"))),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for EventName {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0.as_str()))
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CreateWebhook {
    /// `webhook` (default), `nats` or `amqp`; a sink's kind may also be
    /// told by the object given (`nats` or `amqp`).
    pub kind: Option<SinkKind>,
    /// An absolute http or https URL: required for a webhook, absent for a
    /// sink (its broker URL is in its object).
    pub url: Option<Uri>,
    /// The target of a `nats` sink.
    pub nats: Option<SinkNats>,
    /// The target of an `amqp` sink.
    pub amqp: Option<SinkAmqp>,
    /// Event types to receive; absent or empty means all.
    pub events: Option<Vec<EventName>>,
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
    /// An absolute http or https URL (webhooks only).
    pub url: Option<Uri>,
    /// Replaces a `nats` sink's target, credentials included.
    pub nats: Option<SinkNats>,
    /// Replaces an `amqp` sink's target, credentials included.
    pub amqp: Option<SinkAmqp>,
    /// Event types to receive; empty means all.
    pub events: Option<Vec<EventName>>,
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
    /// opens the stored secret or credentials); for broker sinks also
    /// `auth` (login refused; not retried), `tls`, `no_stream` (no JetStream
    /// stream takes the subject), `unroutable` (no queue bound) and
    /// `rejected`; absent on success.
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
