//! The event outbox. Whatever changes state calls [`record`] inside the same
//! transaction, so an event exists exactly when its change was committed.

use chrono::Utc;
use entity::webhook_events::{ActiveModel, Entity};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde_json::Value;
use uuid::Uuid;

/// Every event type a webhook can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    InstanceQr,
    InstancePaired,
    InstanceConnected,
    InstanceDisconnected,
    InstanceLoggedOut,
    MessageSent,
    MessageDelivered,
    MessageRead,
    MessageFailed,
    MessageReceived,
    EndpointDisabled,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        Self::InstanceQr,
        Self::InstancePaired,
        Self::InstanceConnected,
        Self::InstanceDisconnected,
        Self::InstanceLoggedOut,
        Self::MessageSent,
        Self::MessageDelivered,
        Self::MessageRead,
        Self::MessageFailed,
        Self::MessageReceived,
        Self::EndpointDisabled,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceQr => "instance.qr",
            Self::InstancePaired => "instance.paired",
            Self::InstanceConnected => "instance.connected",
            Self::InstanceDisconnected => "instance.disconnected",
            Self::InstanceLoggedOut => "instance.logged_out",
            Self::MessageSent => "message.sent",
            Self::MessageDelivered => "message.delivered",
            Self::MessageRead => "message.read",
            Self::MessageFailed => "message.failed",
            Self::MessageReceived => "message.received",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new event id: `msg_` and a UUIDv7 in hex, so ids sort by creation time
/// and serve as the catch-up cursor.
pub fn new_event_id() -> String {
    format!("msg_{}", Uuid::now_v7().simple())
}

/// Writes an event to the outbox on `conn` (pass the transaction that makes
/// the change) and returns its id.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    event_type: EventType,
    data: Value,
) -> Result<String, DbErr> {
    let id = new_event_id();
    Entity::insert(ActiveModel {
        id: Set(id.clone()),
        instance_id: Set(instance_id),
        event_type: Set(event_type.as_str().to_owned()),
        data: Set(data),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("instance.exploded"), None);
    }
}
