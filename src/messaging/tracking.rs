//! Sent messages through their receipts, and inbound messages, into the
//! outbox. A status only moves forward: a late `delivered` after `read`
//! changes nothing and emits nothing.

use chrono::Utc;
use entity::inbound_messages;
use entity::messages::{self, Column, Entity};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use super::bodies;
use crate::engine::{Body, Content, EngineEvent, Inbound, Party, ReceiptKind};
use crate::media::Media;
use crate::sealing::Keyring;
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
    let number = Some(m.to_number.as_str()).filter(|n| !n.is_empty());
    json!({
        "message_id": m.wa_message_id,
        "origin": m.origin,
        "to": m.to_number,
        "to_jid": m.to_jid,
        "recipient": {"jid": m.to_jid, "phone_number": number, "lid": m.to_lid},
        "kind": m.kind,
        "status": m.status,
        "error": m.error,
        "sent_at": m.created_at,
    })
}

pub(super) fn party(p: &Party) -> Value {
    json!({"jid": p.jid, "phone_number": p.phone_number, "lid": p.lid})
}

/// Applies a message event, with its outbox events.
pub async fn apply(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    keyring: &Keyring,
    instance_id: Uuid,
    event: &EngineEvent,
    media: Option<&Media>,
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
        EngineEvent::Message(inbound) => {
            let kept = super::groups::kept(db, instance_id, std::slice::from_ref(inbound)).await?;
            received(db, hooks, keyring, instance_id, &kept, media).await
        }
        EngineEvent::Messages {
            messages,
            committed,
        } => {
            let outcome = match super::groups::kept(db, instance_id, messages).await {
                Ok(kept) => received(db, hooks, keyring, instance_id, &kept, media).await,
                Err(e) => Err(e),
            };
            committed.done(outcome.is_ok());
            outcome
        }
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
    hooks
        .write(db, async |txn, outbox| {
            let movable = Entity::find()
                .filter(Column::InstanceId.eq(instance_id))
                .filter(Column::WaMessageId.is_in(message_ids.iter().cloned()))
                .filter(Column::Status.is_in(earlier_than(status).iter().copied()))
                .all(txn)
                .await?;
            let now = Utc::now();
            for mut message in movable {
                if let (Some(stored), Some(who), Some(event_type)) =
                    (message.receipts.clone(), recipient, event_for(status))
                    && status != "failed"
                {
                    // A group message: the participant moves, the message follows
                    // its slowest participant.
                    let Some(moved) = super::group_receipts::record(&stored, who, status, now)
                    else {
                        continue;
                    };
                    let overall = moved
                        .overall
                        .filter(|s| earlier_than(s).contains(&message.status.as_str()))
                        .unwrap_or_else(|| message.status.clone());
                    let updated = Entity::update_many()
                        .col_expr(Column::Receipts, Expr::value(moved.stored.clone()))
                        .col_expr(Column::Status, Expr::value(overall.clone()))
                        .col_expr(Column::UpdatedAt, Expr::value(now))
                        .filter(Column::Id.eq(message.id))
                        .filter(Column::Receipts.eq(stored))
                        .exec(txn)
                        .await?;
                    if updated.rows_affected == 0 {
                        continue;
                    }
                    message.status = overall;
                    message.receipts = Some(moved.stored);
                    let mut data = message_payload(&message);
                    data["timestamp"] = json!(now);
                    data["participant"] = party(&moved.person);
                    data["participant_status"] = json!(status);
                    outbox.record(txn, instance_id, event_type, data).await?;
                    continue;
                }
                let moved = Entity::update_many()
                    .col_expr(Column::Status, Expr::value(status))
                    .col_expr(Column::Error, Expr::value(error.clone()))
                    .col_expr(Column::UpdatedAt, Expr::value(now))
                    .filter(Column::Id.eq(message.id))
                    .filter(Column::Status.is_in(earlier_than(status).iter().copied()))
                    .exec(txn)
                    .await?;
                if moved.rows_affected == 0 {
                    continue;
                }
                message.status = status.to_owned();
                message.error = error.clone();
                if let Some(event_type) = event_for(status) {
                    let mut data = message_payload(&message);
                    data["timestamp"] = json!(now);
                    // The receipt names the recipient as WhatsApp addresses them
                    // now; what it leaves out, the row knows.
                    if let Some(r) = recipient {
                        let kept = data["recipient"].take();
                        let mut from_receipt = party(r);
                        for half in ["phone_number", "lid"] {
                            if from_receipt[half].is_null() {
                                from_receipt[half] = kept[half].clone();
                            }
                        }
                        data["recipient"] = from_receipt;
                    }
                    outbox.record(txn, instance_id, event_type, data).await?;
                }
            }
            Ok(())
        })
        .await
}

/// Records inbound messages and their `message.received` events, all in
/// one transaction. A message already recorded (a redelivery after a crash
/// between our commit and the client's acknowledgement) records nothing.
/// Media rows go in the same transaction; their downloads start after it.
async fn received(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    keyring: &Keyring,
    instance_id: Uuid,
    messages: &[Inbound],
    media: Option<&Media>,
) -> Result<(), DbErr> {
    let mut new = 0;
    let mut media_rows = Vec::new();
    // The caller acknowledges the messages once this returns: after the
    // commit, which on SQLite other events may share.
    hooks
        .write(db, async |txn, outbox| {
            for m in messages {
                // The owner's reactions, edits and deletions take the path of a
                // contact's below: their row is the key against redelivery (change
                // rows are never listed), and they change their target.
                if m.from_me && !m.content.changes_another() {
                    if !super::phone_sent::recorded(txn, instance_id, m).await? {
                        let (row, data) = super::phone_sent::row(keyring, instance_id, m)?;
                        messages::Entity::insert(messages::ActiveModel::from(row))
                            .exec_without_returning(txn)
                            .await?;
                        outbox
                            .record(txn, instance_id, EventType::MessageSent, data)
                            .await?;
                    }
                    continue;
                }
                if already_recorded(txn, instance_id, m).await? {
                    continue;
                }
                new += u64::from(!m.from_me);
                let row_id = Uuid::now_v7();
                let (event_type, mut data) = match &m.content {
                    Content::PollVote { poll_id, vote } => {
                        super::votes::record(txn, keyring, instance_id, m, poll_id, vote).await?
                    }
                    _ => received_event(m),
                };
                if let (Some(media), Content::Media(described)) = (media, &m.content) {
                    let row = media.record(txn, instance_id, row_id, m, described).await?;
                    data["media"] =
                        crate::media::object(&row, described.caption.as_deref(), Some(described));
                    media_rows.push(row);
                }
                let event_id = outbox.record(txn, instance_id, event_type, data).await?;
                let body = Body::of_inbound(&m.content)
                    .map(|b| bodies::seal(keyring, bodies::RECEIVED, row_id, &b))
                    .transpose()?;
                inbound_messages::Entity::insert(inbound_messages::ActiveModel {
                    id: Set(row_id),
                    instance_id: Set(instance_id),
                    chat_jid: Set(m.chat.clone()),
                    sender_jid: Set(m.from.jid.clone()),
                    wa_message_id: Set(m.message_id.clone()),
                    event_id: Set(event_id),
                    sent_at: Set(m.timestamp),
                    created_at: Set(Utc::now()),
                    body: Set(body),
                    read_at: Set(None),
                    kind: Set(m.content.kind().to_owned()),
                    sender_phone_number: Set(m.from.phone_number.clone()),
                    sender_lid: Set(m.from.lid.clone()),
                    edited_at: Set(None),
                    deleted_at: Set(None),
                    reactions: Set(None),
                })
                .exec_without_returning(txn)
                .await?;
                super::changes::apply(txn, keyring, instance_id, m).await?;
            }
            Ok(())
        })
        .await?;
    if let Some(media) = media {
        media.committed(&media_rows);
    }
    crate::metrics::inbound(new);
    Ok(())
}

/// Whether this message was recorded before. Checked inside the write
/// transaction: on SQLite it holds the only write lock; on PostgreSQL a
/// concurrent second commit of the same key fails on the unique index and
/// the client redelivers, to find it here.
async fn already_recorded<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    m: &Inbound,
) -> Result<bool, DbErr> {
    use entity::inbound_messages::Column as C;
    Ok(inbound_messages::Entity::find()
        .filter(C::InstanceId.eq(instance_id))
        .filter(C::ChatJid.eq(m.chat.as_str()))
        .filter(C::SenderJid.eq(m.from.jid.as_str()))
        .filter(C::WaMessageId.eq(m.message_id.as_str()))
        .one(conn)
        .await?
        .is_some())
}

/// The event a received message emits: reactions, edits and deletions
/// change another message and have events of their own.
pub(super) fn received_event(m: &Inbound) -> (EventType, Value) {
    let sender = party(&m.from);
    let mut data = json!({
        "message_id": m.message_id,
        "kind": m.content.kind(),
        "chat": m.chat,
        "sender": sender,
        "from": m.from.jid,
        "from_pn": m.from.phone_number,
        "from_lid": m.from.lid,
        "timestamp": m.timestamp,
    });
    if m.chat.ends_with("@g.us") {
        data["group"] = json!({ "jid": m.chat, "subject": m.chat_subject });
    }
    let event = match &m.content {
        Content::Text {
            text,
            quoted,
            mentions,
        } => {
            data["text"] = json!(text);
            data["quoted"] = json!(quoted);
            data["mentions"] = json!(mentions);
            EventType::MessageReceived
        }
        Content::Media(media) => {
            data["text"] = json!(media.caption);
            data["media"] = json!(media);
            EventType::MessageReceived
        }
        Content::Location {
            latitude,
            longitude,
            name,
            address,
            live,
        } => {
            data["location"] = json!({
                "latitude": latitude, "longitude": longitude,
                "name": name, "address": address, "live": live,
            });
            EventType::MessageReceived
        }
        Content::Contacts(contacts) => {
            data["contacts"] = json!(contacts);
            EventType::MessageReceived
        }
        Content::Poll {
            question,
            options,
            selectable,
        } => {
            data["poll"] = json!({
                "question": question, "options": options, "selectable": selectable,
            });
            EventType::MessageReceived
        }
        Content::PollVote { poll_id, .. } => {
            data["poll_id"] = json!(poll_id);
            EventType::MessageReceived
        }
        Content::Unknown { type_name } => {
            data["unknown_type"] = json!(type_name);
            EventType::MessageReceived
        }
        // Reactions, edits and deletions name the message they change in
        // `message_id`, as the events of our own edits and deletions do.
        Content::Reaction { target_id, emoji } => {
            mark_origin(&mut data, m.from_me);
            data["reaction_id"] = json!(m.message_id);
            data["message_id"] = json!(target_id);
            data["emoji"] = json!(emoji);
            data["removed"] = json!(emoji.is_empty());
            EventType::MessageReaction
        }
        Content::Edited { target_id, text } => {
            mark_origin(&mut data, m.from_me);
            data["message_id"] = json!(target_id);
            data["text"] = json!(text);
            data["edited_at"] = json!(m.timestamp);
            EventType::MessageEdited
        }
        Content::Deleted { target_id } => {
            mark_origin(&mut data, m.from_me);
            data["message_id"] = json!(target_id);
            data["for"] = json!("everyone");
            data["deleted_at"] = json!(m.timestamp);
            EventType::MessageDeleted
        }
    };
    (event, data)
}

/// Says who made a change: the owner (on the phone or another linked
/// device: `origin: "phone"`, as their messages carry) or the sender.
fn mark_origin(data: &mut Value, from_me: bool) {
    data["from_me"] = json!(from_me);
    if from_me {
        data["origin"] = json!("phone");
    }
}
