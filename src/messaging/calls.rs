//! Incoming calls: every offer emits `call.received`; an instance set to
//! reject calls turns it away (`call.rejected`) and, with a `call_reply`,
//! texts the caller, a message tracked like any other send.

use std::sync::Arc;

use entity::instances;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use super::send::{Recorded, SendError, record_sent};
use super::tracking::party;
use crate::engine::{Body, Context, EngineError, IncomingCall, Session};
use crate::sealing::Keyring;
use crate::webhooks::{EventType, Webhooks};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Send(#[from] SendError),
}

fn payload(call: &IncomingCall) -> Value {
    json!({
        "call_id": call.call_id,
        "caller": party(&call.from),
        "from": call.from.jid,
        "from_pn": call.from.phone_number,
        "from_lid": call.from.lid,
        "media": if call.video { "video" } else { "voice" },
        "video": call.video,
        "offered_at": call.offered_at,
    })
}

async fn emit(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    event: EventType,
    data: Value,
) -> Result<(), DbErr> {
    let txn = crate::db::begin_write(db).await?;
    let mut outbox = hooks.outbox();
    outbox.record(&txn, instance_id, event, data).await?;
    txn.commit().await?;
    outbox.committed();
    Ok(())
}

/// Reports `call` and, as the instance's settings say, rejects it and
/// texts the caller. `session` is the instance's live client.
pub async fn incoming(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    keyring: &Keyring,
    session: Option<Arc<dyn Session>>,
    instance_id: Uuid,
    call: &IncomingCall,
) -> Result<(), CallError> {
    let Some(instance) = instances::Entity::find_by_id(instance_id).one(db).await? else {
        return Ok(());
    };
    let mut data = payload(call);
    data["rejecting"] = json!(instance.reject_calls);
    emit(db, hooks, instance_id, EventType::CallReceived, data).await?;
    if !instance.reject_calls {
        return Ok(());
    }
    let Some(session) = session else {
        tracing::warn!("a call to reject arrived without a live session");
        return Ok(());
    };
    if let Err(e) = session.reject_call(call).await {
        tracing::warn!(error = %e, "the call could not be rejected");
        return Ok(());
    }
    let mut data = payload(call);
    data["reply_message_id"] = Value::Null;
    let reply = instance.call_reply.filter(|r| !r.trim().is_empty());
    if let Some(text) = reply {
        match reply_to_caller(db, hooks, keyring, &*session, instance_id, call, text).await {
            Ok(id) => data["reply_message_id"] = json!(id),
            Err(e) => tracing::warn!(error = %e, "the call reply was not sent"),
        }
    }
    emit(db, hooks, instance_id, EventType::CallRejected, data).await?;
    Ok(())
}

/// Texts the caller, tracked as a send with its `message.sent`.
async fn reply_to_caller(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    keyring: &Keyring,
    session: &dyn Session,
    instance_id: Uuid,
    call: &IncomingCall,
    text: String,
) -> Result<String, CallError> {
    let to_jid = match &call.from.phone_number {
        Some(number) => format!("{number}@s.whatsapp.net"),
        None => call.from.jid.clone(),
    };
    let sent = session.send_text(&to_jid, &text, &Context::default()).await;
    let (message_id, failure) = match sent {
        Ok(id) => (id, None),
        Err(e @ (EngineError::NotConnected | EngineError::Timeout(_))) => {
            return Err(SendError::Engine(e).into());
        }
        Err(e) => (
            format!("failed-{}", Uuid::now_v7().simple()),
            Some(e.to_string()),
        ),
    };
    let recorded = Recorded {
        instance_id,
        message_id,
        to: call.from.phone_number.clone().unwrap_or_default(),
        to_jid,
        to_lid: call.from.lid.clone(),
        kind: "text",
        failure,
        body: Some(Body::Text { text }),
        receipts: None,
    };
    let sent = record_sent(db, hooks, keyring, recorded).await?;
    Ok(sent.message_id)
}
