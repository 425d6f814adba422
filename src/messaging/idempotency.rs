//! `Idempotency-Key` on sends: one request per key does the work, repeats
//! get its answer, and a claim whose claimer is gone can be taken over.
//!
//! A claim records who made it: the session's lease on a cluster node
//! (node and fencing epoch), else this run of the process. A repeat that
//! finds the claim open under another claimer knows that claimer's session
//! is gone (the lease moved on, or the process restarted; SQLite admits one
//! process per file) and takes the claim over instead of answering 409
//! until the key expires. The message id is derived from the key, so the
//! new claimer sends under the id the first one used: if that one was
//! recorded, its row is the answer; if it went out unrecorded, WhatsApp
//! clients take the second copy for the one they already have.

use chrono::{DateTime, Utc};
use entity::{idempotency_keys, messages};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::send::{SendError, Sent};

/// A request's Idempotency-Key and the digest of what it asked.
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// SHA-256 (hex) over the parts of a request, each length-prefixed so that
/// moving bytes between parts changes the digest.
pub fn request_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex_lower(&hasher.finalize())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The WhatsApp message id a send with `key` goes out under, in WhatsApp
/// Web's shape ("3EB0" and 18 hex digits): the same for every attempt.
pub fn message_id(instance_id: Uuid, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"wagate idempotency-key message id\0");
    hasher.update(instance_id.as_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest[..9].iter().map(|b| format!("{b:02X}")).collect();
    format!("3EB0{hex}")
}

/// What claiming a key found.
pub enum Claimed {
    /// This request does the work.
    Fresh,
    /// The first claimer is gone; this request finishes its work.
    TakenOver,
    /// The key was answered: the answer to replay.
    Answered(Sent),
}

/// Claims `idem` for a request made under `claimer`.
pub async fn claim(
    db: &DatabaseConnection,
    instance_id: Uuid,
    idem: &Idempotency,
    claimer: &str,
    expired_before: DateTime<Utc>,
) -> Result<Claimed, SendError> {
    use idempotency_keys::{ActiveModel, Column, Entity};
    Entity::delete_many()
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::Key.eq(&idem.key))
        .filter(Column::CreatedAt.lt(expired_before))
        .exec(db)
        .await?;
    let claim = ActiveModel {
        instance_id: Set(instance_id),
        key: Set(idem.key.clone()),
        request_hash: Set(idem.request_hash.clone()),
        response: Set(None),
        created_at: Set(Utc::now()),
        claimed_by: Set(Some(claimer.to_owned())),
    };
    // The primary key makes the claim atomic: one request wins.
    let inserted = Entity::insert(claim)
        .on_conflict_do_nothing()
        .exec_without_returning(db)
        .await?;
    if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        return Ok(Claimed::Fresh);
    }
    let first = Entity::find_by_id((instance_id, idem.key.clone()))
        .one(db)
        .await?
        .ok_or(SendError::IdempotencyKeyInFlight)?;
    if first.request_hash != idem.request_hash {
        return Err(SendError::IdempotencyKeyReused);
    }
    if let Some(response) = first.response {
        return serde_json::from_value(response)
            .map(Claimed::Answered)
            .map_err(|e| SendError::Db(DbErr::Custom(e.to_string())));
    }
    if first.claimed_by.as_deref() == Some(claimer) {
        return Err(SendError::IdempotencyKeyInFlight);
    }
    // Conditional on the claimer read above: of several repeats racing for
    // an abandoned claim, one takes it.
    let taken = Entity::update_many()
        .col_expr(Column::ClaimedBy, Expr::value(claimer.to_owned()))
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::Key.eq(&idem.key))
        .filter(Column::Response.is_null())
        .filter(match &first.claimed_by {
            Some(by) => Column::ClaimedBy.eq(by.clone()),
            None => Column::ClaimedBy.is_null(),
        })
        .exec(db)
        .await?;
    if taken.rows_affected == 0 {
        return Err(SendError::IdempotencyKeyInFlight);
    }
    tracing::info!(%instance_id, "idempotency key taken over from a claimer that is gone");
    // The first claimer may have sent and recorded before it went.
    let recorded = messages::Entity::find()
        .filter(messages::Column::InstanceId.eq(instance_id))
        .filter(messages::Column::WaMessageId.eq(message_id(instance_id, &idem.key)))
        .one(db)
        .await?;
    match recorded {
        Some(row) => {
            let sent = Sent {
                message_id: row.wa_message_id,
                instance_id,
                to: row.to_number,
                to_jid: row.to_jid,
                status: "sent".to_owned(),
                timestamp: row.created_at,
            };
            remember(db, instance_id, &idem.key, &sent).await?;
            Ok(Claimed::Answered(sent))
        }
        None => Ok(Claimed::TakenOver),
    }
}

/// Keeps the answer to replay for the key.
pub async fn remember(
    db: &DatabaseConnection,
    instance_id: Uuid,
    key: &str,
    sent: &Sent,
) -> Result<(), SendError> {
    use idempotency_keys::{Column, Entity};
    let response =
        serde_json::to_value(sent).map_err(|e| SendError::Db(DbErr::Custom(e.to_string())))?;
    Entity::update_many()
        .col_expr(Column::Response, Expr::value(response))
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Frees the key after a failed request, which may be retried with it.
pub async fn release(
    db: &DatabaseConnection,
    instance_id: Uuid,
    key: &str,
) -> Result<(), SendError> {
    use idempotency_keys::{Column, Entity};
    Entity::delete_many()
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::message_id;
    use uuid::Uuid;

    #[test]
    fn message_ids_follow_the_key_in_whatsapp_webs_shape() {
        let instance = Uuid::from_u128(7);
        let id = message_id(instance, "order-1");
        assert_eq!(id, message_id(instance, "order-1"));
        assert_ne!(id, message_id(instance, "order-2"));
        assert_ne!(id, message_id(Uuid::from_u128(8), "order-1"));
        assert_eq!(id.len(), 22);
        assert!(id.starts_with("3EB0"));
        assert!(
            id[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }
}
