//! Messages the owner sent from the phone or another linked device: kept
//! as sent messages with `origin: "phone"`, so their receipts move them as
//! they move API sends, and reported as `message.sent` with the bodies a
//! received message of the same kind carries.

use chrono::Utc;
use entity::messages;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use super::bodies;
use super::tracking::{message_payload, received_event};
use crate::engine::{Body, Inbound};
use crate::sealing::Keyring;

/// Whether message `m` is recorded already (a redelivery).
pub(super) async fn recorded<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    m: &Inbound,
) -> Result<bool, DbErr> {
    Ok(messages::Entity::find()
        .filter(messages::Column::InstanceId.eq(instance_id))
        .filter(messages::Column::WaMessageId.eq(m.message_id.as_str()))
        .one(conn)
        .await?
        .is_some())
}

/// The tracking row of `m` (its body sealed) and its `message.sent` data.
pub(super) fn row(
    keyring: &Keyring,
    instance_id: Uuid,
    m: &Inbound,
) -> Result<(messages::Model, Value), DbErr> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let body = Body::of_inbound(&m.content)
        .map(|b| bodies::seal(keyring, bodies::SENT, id, &b))
        .transpose()?;
    let (user, server) = m.chat.split_once('@').unwrap_or((m.chat.as_str(), ""));
    let row = messages::Model {
        id,
        instance_id,
        wa_message_id: m.message_id.clone(),
        to_number: match server {
            "s.whatsapp.net" => user.to_owned(),
            _ => String::new(),
        },
        to_jid: m.chat.clone(),
        kind: m.content.kind().to_owned(),
        status: "sent".to_owned(),
        error: None,
        created_at: now,
        updated_at: now,
        edited_at: None,
        deleted_at: None,
        body,
        to_lid: (server == "lid").then(|| m.chat.clone()),
        origin: "phone".to_owned(),
        reactions: None,
        receipts: None,
    };
    let (_, mut data) = received_event(m);
    if let (Value::Object(data), Value::Object(tracked)) = (&mut data, message_payload(&row)) {
        data.extend(tracked);
        data.insert("sent_at".into(), serde_json::json!(m.timestamp));
    }
    Ok((row, data))
}
