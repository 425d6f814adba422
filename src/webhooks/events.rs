//! The event outbox. Whatever changes state records its events inside the
//! same transaction (through an [`Outbox`], or [`record`]), so an event
//! exists exactly when its change was committed.

use std::sync::Arc;

use chrono::Utc;
use entity::webhook_deliveries::{self, Status as DeliveryStatus};
use entity::webhook_due;
use entity::webhook_events::{ActiveModel, Entity, Model};
use entity::webhooks;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::Value;
use uuid::Uuid;

use super::Webhooks;
use super::handoff::{Local, Ready};
use super::payload;

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
    MessageReaction,
    MessageEdited,
    MessageDeleted,
    MessagePollVote,
    CallReceived,
    CallRejected,
    MessageMediaReady,
    MessageMediaFailed,
    GroupJoined,
    GroupLeft,
    GroupUpdated,
    GroupParticipants,
    GroupMembershipRequest,
    EndpointDisabled,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 25] = [
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
        Self::MessageReaction,
        Self::MessageEdited,
        Self::MessageDeleted,
        Self::MessagePollVote,
        Self::CallReceived,
        Self::CallRejected,
        Self::MessageMediaReady,
        Self::MessageMediaFailed,
        Self::GroupJoined,
        Self::GroupLeft,
        Self::GroupUpdated,
        Self::GroupParticipants,
        Self::GroupMembershipRequest,
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
            Self::MessageReaction => "message.reaction",
            Self::MessageEdited => "message.edited",
            Self::MessageDeleted => "message.deleted",
            Self::MessagePollVote => "message.poll_vote",
            Self::CallReceived => "call.received",
            Self::CallRejected => "call.rejected",
            Self::MessageMediaReady => "message.media_ready",
            Self::MessageMediaFailed => "message.media_failed",
            Self::GroupJoined => "group.joined",
            Self::GroupLeft => "group.left",
            Self::GroupUpdated => "group.updated",
            Self::GroupParticipants => "group.participants",
            Self::GroupMembershipRequest => "group.membership_request",
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

/// A new event id: `msg_` and a UUIDv7 in hex. Ids sort roughly by creation
/// time, not by commit: the cursor is the event's position.
pub fn new_event_id() -> String {
    format!("msg_{}", Uuid::now_v7().simple())
}

/// Which webhooks of the instance an event is owed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every enabled webhook whose filter matches.
    Subscribers,
    /// One webhook, whatever its filter (e.g. `webhook.test`).
    Only(Uuid),
    /// Every enabled, matching webhook but one (e.g. `endpoint.disabled`).
    /// Subscribers include the global webhooks.
    AllBut(Uuid),
}

/// Writes an event to the outbox on `conn` (pass the transaction that makes
/// the change) with one pending delivery per subscribed webhook, and returns
/// its id. Call [`super::Webhooks::wake`] after the commit (the sequencer
/// finds the event within its sweep); or record
/// through an [`Outbox`], whose deliveries start without waiting for a claim.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    event_type: EventType,
    data: Value,
) -> Result<String, DbErr> {
    record_for(conn, instance_id, event_type, data, Audience::Subscribers).await
}

/// [`record`] for a chosen audience.
pub async fn record_for<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    event_type: EventType,
    data: Value,
    audience: Audience,
) -> Result<String, DbErr> {
    let mut unused = Vec::new();
    let recorded = insert(
        conn,
        instance_id,
        event_type,
        data,
        audience,
        None,
        &mut unused,
    )
    .await?;
    Ok(recorded.0)
}

/// The events of one transaction. Record through it, commit, then call
/// [`Outbox::committed`]: the deliveries it could claim for this process's
/// dispatcher start at once, the others when a dispatcher claims them.
/// Dropped without `committed`, it gives its slots back; deliveries it
/// claimed in a transaction that did commit are delivered after their lease.
#[must_use = "call committed() once the transaction has committed"]
pub struct Outbox {
    webhooks: Webhooks,
    local: Option<Arc<Local>>,
    ready: Vec<Ready>,
    /// Deliveries left pending for the claim query.
    pending: usize,
    /// Instances with events numbered in the transaction, for the streams.
    numbered: Vec<Uuid>,
    /// Whether events were left for the sequencer.
    unnumbered: bool,
}

impl Outbox {
    pub(super) fn new(webhooks: Webhooks, local: Option<Arc<Local>>) -> Self {
        Self {
            webhooks,
            local,
            ready: Vec::new(),
            pending: 0,
            numbered: Vec::new(),
            unnumbered: false,
        }
    }

    /// [`record`] within this outbox's transaction.
    pub async fn record<C: ConnectionTrait>(
        &mut self,
        conn: &C,
        instance_id: Uuid,
        event_type: EventType,
        data: Value,
    ) -> Result<String, DbErr> {
        self.record_for(conn, instance_id, event_type, data, Audience::Subscribers)
            .await
    }

    /// [`record_for`] within this outbox's transaction.
    pub async fn record_for<C: ConnectionTrait>(
        &mut self,
        conn: &C,
        instance_id: Uuid,
        event_type: EventType,
        data: Value,
        audience: Audience,
    ) -> Result<String, DbErr> {
        let (id, pending, numbered) = insert(
            conn,
            instance_id,
            event_type,
            data,
            audience,
            self.local.as_deref(),
            &mut self.ready,
        )
        .await?;
        self.pending += pending;
        if numbered {
            self.numbered.push(instance_id);
        } else {
            self.unnumbered = true;
        }
        Ok(id)
    }

    /// Call after the transaction committed.
    pub fn committed(mut self) {
        // Streams hear of events once they are numbered.
        self.webhooks.streams.committed(&self.numbered);
        if self.unnumbered {
            self.webhooks.sequencer.wake(self.pending > 0);
        }
        if let Some(local) = &self.local {
            for ready in self.ready.drain(..) {
                // A dispatcher that stopped drops it: the lease brings the
                // delivery back.
                let _ = local.jobs.send(ready);
            }
        }
        if self.pending > 0 {
            self.webhooks.wake();
        }
    }
}

/// Inserts the event and its deliveries; those `local` can take are
/// claimed for it and pushed to `ready`. Returns the event id, how many
/// deliveries were left pending, and whether the event was numbered.
async fn insert<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    event_type: EventType,
    data: Value,
    audience: Audience,
    local: Option<&Local>,
    ready: &mut Vec<Ready>,
) -> Result<(String, usize, bool), DbErr> {
    let id = new_event_id();
    let now = Utc::now();
    // Where numbering would serialise an instance's transactions, the
    // event goes in unsequenced (0, 0) and the sequencer numbers it once
    // committed; see `super::sequencer`.
    let numbers = super::sequencer::inline(conn, instance_id).await?;
    let (position, sequence) = numbers.unwrap_or((0, 0));
    let event = Model {
        id: id.clone(),
        instance_id,
        position,
        sequence,
        event_type: event_type.as_str().to_owned(),
        data,
        created_at: now,
    };
    // A delivery handed to the local dispatcher carries the body with it.
    let claimer = local.map(|local| (local, payload::body(&event)));
    Entity::insert(ActiveModel::from(event))
        .exec_without_returning(conn)
        .await?;

    // The instance's own webhooks and the global ones.
    let mut query = webhooks::Entity::find()
        .filter(
            Condition::any()
                .add(webhooks::Column::InstanceId.eq(instance_id))
                .add(webhooks::Column::InstanceId.is_null()),
        )
        .order_by_asc(webhooks::Column::Id);
    query = match audience {
        Audience::Only(webhook_id) => query.filter(webhooks::Column::Id.eq(webhook_id)),
        Audience::Subscribers => query.filter(webhooks::Column::Enabled.eq(true)),
        Audience::AllBut(webhook_id) => query
            .filter(webhooks::Column::Enabled.eq(true))
            .filter(webhooks::Column::Id.ne(webhook_id)),
    };
    let targets: Vec<webhooks::Model> = query
        .all(conn)
        .await?
        .into_iter()
        .filter(|w| matches!(audience, Audience::Only(_)) || subscribes(&w.events, event_type))
        .collect();
    let mut pending = 0;
    let mut rows = Vec::with_capacity(targets.len());
    let mut due = Vec::with_capacity(targets.len());
    for webhook in &targets {
        let delivery_id = Uuid::now_v7();
        let claimed = claimer.as_ref().and_then(|(local, body)| {
            local
                .claim(
                    webhook,
                    delivery_id,
                    &id,
                    event_type.as_str(),
                    instance_id,
                    body,
                )
                .map(|r| (*local, r))
        });
        let (status, locked_until, claim_token) = match claimed {
            Some((local, r)) => {
                ready.push(r);
                (
                    DeliveryStatus::Delivering,
                    Some(local.lease_until(now)),
                    Some(local.token),
                )
            }
            None => {
                pending += 1;
                (DeliveryStatus::Pending, None, None)
            }
        };
        due.push(webhook_due::ActiveModel {
            delivery_id: Set(delivery_id),
            webhook_id: Set(webhook.id),
            event_id: Set(id.clone()),
            next_attempt_at: Set(now),
            locked_until: Set(locked_until),
            claim_token: Set(claim_token),
        });
        rows.push(webhook_deliveries::ActiveModel {
            id: Set(delivery_id),
            event_id: Set(id.clone()),
            webhook_id: Set(webhook.id),
            status: Set(status),
            attempts: Set(0),
            next_attempt_at: Set(now),
            locked_until: Set(locked_until),
            claim_token: Set(claim_token),
            last_status_code: Set(None),
            last_error: Set(None),
            delivered_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
    }
    if !rows.is_empty() {
        webhook_deliveries::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
        // Open, so in the due queue too (see `super::due`).
        webhook_due::Entity::insert_many(due)
            .exec_without_returning(conn)
            .await?;
    }
    Ok((id, pending, numbers.is_some()))
}

/// Whether a webhook's stored filter (a JSON array of type names; empty
/// means all) lets `event_type` through.
pub fn subscribes(filter: &Value, event_type: EventType) -> bool {
    match filter.as_array() {
        Some(types) if !types.is_empty() => types
            .iter()
            .any(|t| t.as_str() == Some(event_type.as_str())),
        _ => true,
    }
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

    #[test]
    fn filters() {
        let all = serde_json::json!([]);
        let some = serde_json::json!(["message.read", "instance.qr"]);
        assert!(subscribes(&all, EventType::MessageSent));
        assert!(subscribes(&some, EventType::InstanceQr));
        assert!(!subscribes(&some, EventType::MessageSent));
    }
}
