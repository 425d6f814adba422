//! Sent messages through their receipts, and inbound messages, into the
//! outbox. A status only moves forward: a late `delivered` after `read`
//! changes nothing and emits nothing.

use chrono::Utc;
use entity::messages::{self, Column, Entity};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::engine::{EngineEvent, Inbound, Party, ReceiptKind};
use crate::webhooks::{EventType, Webhooks};

/// The statuses a message may move to `status` from.
fn earlier_than(status: &str) -> &'static [&'static str] {
    match status {
        "server_ack" => &["sent"],
        "delivered" => &["sent", "server_ack"],
        "read" => &["sent", "server_ack", "delivered"],
        "played" => &["sent", "server_ack", "delivered", "read"],
        "failed" => &["sent", "server_ack"],
        _ => &[],
    }
}

/// The event a move to `status` emits, if any.
fn event_for(status: &str) -> Option<EventType> {
    match status {
        "delivered" => Some(EventType::MessageDelivered),
        "read" | "played" => Some(EventType::MessageRead),
        "failed" => Some(EventType::MessageFailed),
        _ => None,
    }
}

pub fn message_payload(m: &messages::Model) -> Value {
    json!({
        "message_id": m.wa_message_id,
        "to": m.to_number,
        "to_jid": m.to_jid,
        "kind": m.kind,
        "status": m.status,
        "error": m.error,
        "sent_at": m.created_at,
    })
}

fn party(p: &Party) -> Value {
    json!({"jid": p.jid, "phone_number": p.phone_number, "lid": p.lid})
}

/// Applies a message event, with its outbox events.
pub async fn apply(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    event: &EngineEvent,
) -> Result<(), DbErr> {
    match event {
        EngineEvent::ServerAck { message_id, error } => {
            let (status, error) = match error {
                Some(e) => ("failed", Some(e.clone())),
                None => ("server_ack", None),
            };
            advance(
                db,
                hooks,
                instance_id,
                std::slice::from_ref(message_id),
                status,
                error,
                None,
            )
            .await
        }
        EngineEvent::Receipt {
            message_ids,
            kind,
            from,
        } => {
            let status = match kind {
                ReceiptKind::Delivered => "delivered",
                ReceiptKind::Read => "read",
                ReceiptKind::Played => "played",
            };
            advance(
                db,
                hooks,
                instance_id,
                message_ids,
                status,
                None,
                Some(from),
            )
            .await
        }
        EngineEvent::Message(inbound) => received(db, hooks, instance_id, inbound).await,
        _ => Ok(()),
    }
}

/// Moves the named messages forward to `status`, one event per message that
/// moved, all in one transaction.
pub async fn advance(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    message_ids: &[String],
    status: &str,
    error: Option<String>,
    recipient: Option<&Party>,
) -> Result<(), DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let movable = Entity::find()
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::WaMessageId.is_in(message_ids.iter().cloned()))
        .filter(Column::Status.is_in(earlier_than(status).iter().copied()))
        .all(&txn)
        .await?;
    let now = Utc::now();
    let mut outbox = hooks.outbox();
    for mut message in movable {
        let moved = Entity::update_many()
            .col_expr(Column::Status, Expr::value(status))
            .col_expr(Column::Error, Expr::value(error.clone()))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.eq(message.id))
            .filter(Column::Status.is_in(earlier_than(status).iter().copied()))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            continue;
        }
        message.status = status.to_owned();
        message.error = error.clone();
        if let Some(event_type) = event_for(status) {
            let mut data = message_payload(&message);
            data["timestamp"] = json!(now);
            if let Some(r) = recipient {
                data["recipient"] = party(r);
            }
            outbox.record(&txn, instance_id, event_type, data).await?;
        }
    }
    txn.commit().await?;
    outbox.committed();
    Ok(())
}

async fn received(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    m: &Inbound,
) -> Result<(), DbErr> {
    let data = json!({
        "message_id": m.message_id,
        "from": m.from.jid,
        "from_pn": m.from.phone_number,
        "from_lid": m.from.lid,
        "chat": m.chat,
        "timestamp": m.timestamp,
        "text": m.text,
        "media": m.media.as_ref().map(|media| json!({
            "kind": media.kind.as_str(),
            "mime_type": media.mime_type,
            "file_name": media.file_name,
            "size": media.size,
            "caption": media.caption,
        })),
    });
    // The event and its deliveries land together or not at all.
    let txn = crate::db::begin_write(db).await?;
    let mut outbox = hooks.outbox();
    outbox
        .record(&txn, instance_id, EventType::MessageReceived, data)
        .await?;
    txn.commit().await?;
    outbox.committed();
    crate::metrics::inbound();
    Ok(())
}
