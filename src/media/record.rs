//! An inbound message's media row, written in the same transaction as the
//! message, and the `media` object its events carry.

use chrono::{DateTime, Utc};
use entity::inbound_media::{self, ActiveModel, Model};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Media, Status, codes};
use crate::engine::{Inbound, MediaRef, ReceivedMedia};
use crate::sealing::Context;

/// What the reference is sealed to: this row, so it cannot be moved. The
/// key-value context with a space of its own (row ids are fresh UUIDs, so
/// no store row shares it) keeps the sealing module untouched.
pub(super) fn reference_context(row_id: Uuid) -> Context {
    Context::kv(row_id, "inbound_media", "reference")
}

impl Media {
    /// Records the media of `m` (message row `inbound_id`). Pending unless
    /// it cannot be downloaded at all: no reference, or over the limit.
    pub async fn record<C: ConnectionTrait>(
        &self,
        conn: &C,
        instance_id: Uuid,
        inbound_id: Uuid,
        m: &Inbound,
        media: &ReceivedMedia,
    ) -> Result<Model, DbErr> {
        let id = Uuid::now_v7();
        let now = Utc::now();
        let declared = media
            .reference
            .as_ref()
            .map(|r| r.file_length)
            .or(media.size);
        let (status, error) = match (&media.reference, declared) {
            (None, _) => (Status::Failed, Some(codes::REFERENCE_MISSING)),
            (Some(_), Some(len)) if len > self.settings().max_inbound_bytes => {
                (Status::Failed, Some(codes::TOO_LARGE))
            }
            _ => (Status::Pending, None),
        };
        let reference = match &media.reference {
            Some(r) if status == Status::Pending => Some(self.seal_reference(id, r)?),
            _ => None,
        };
        let detail = error.map(|code| codes::describe(code, self.settings().max_inbound_bytes));
        let row = Model {
            id,
            instance_id,
            inbound_message_id: inbound_id,
            wa_message_id: m.message_id.clone(),
            chat_jid: m.chat.clone(),
            sender_jid: m.from.jid.clone(),
            kind: media.kind.as_str().to_owned(),
            mime_type: media.mime_type.clone(),
            file_name: media.file_name.clone(),
            size: declared.and_then(|s| i64::try_from(s).ok()),
            sha256: media.sha256.clone(),
            reference,
            status: status.as_str().to_owned(),
            error_code: error.map(str::to_owned),
            error_detail: detail,
            stored_hash: None,
            stored_size: None,
            attempts: 0,
            ready_at: None,
            created_at: now,
            updated_at: now,
        };
        inbound_media::Entity::insert(ActiveModel::from(row.clone()))
            .exec_without_returning(conn)
            .await?;
        Ok(row)
    }

    fn seal_reference(&self, row_id: Uuid, r: &MediaRef) -> Result<String, DbErr> {
        let json = serde_json::to_string(r).map_err(|e| DbErr::Custom(e.to_string()))?;
        self.keyring()
            .seal_text(&json, &reference_context(row_id))
            .map_err(|e| DbErr::Custom(format!("sealing a media reference: {e}")))
    }

    /// The reference of `row`, opened.
    pub(super) fn open_reference(&self, row: &Model) -> Result<Option<MediaRef>, String> {
        let Some(stored) = &row.reference else {
            return Ok(None);
        };
        let json = self
            .keyring()
            .open_text(stored, &reference_context(row.id))
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// The route that serves a message's media.
pub fn media_url(instance_id: Uuid, message_id: &str) -> String {
    // WhatsApp's ids are letters and digits; anything else is escaped.
    let id: String = message_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/v1/instances/{instance_id}/messages/{id}/media")
}

/// The `media` object of `message.received`, `message.media_ready` and
/// `message.media_failed`: what WhatsApp said of it and where it stands.
pub fn object(row: &Model, caption: Option<&str>, described: Option<&ReceivedMedia>) -> Value {
    let mut o = json!({
        "kind": row.kind,
        "url": media_url(row.instance_id, &row.wa_message_id),
        "mime_type": row.mime_type,
        "file_name": row.file_name,
        "size": row.stored_size.or(row.size),
        "sha256": row.stored_hash.clone().or_else(|| row.sha256.clone()),
        "caption": caption,
        "status": row.status,
        "error": row.error_code,
    });
    if let Some(d) = described {
        for (key, value) in [
            ("duration", d.duration_secs),
            ("width", d.width),
            ("height", d.height),
        ] {
            if let Some(v) = value {
                o[key] = json!(v);
            }
        }
        if let Some(v) = d.duration_secs {
            // The name this field had before downloads existed.
            o["duration_secs"] = json!(v);
        }
    }
    o
}

/// When the row last changed, for events.
pub(super) fn changed_at(row: &Model) -> DateTime<Utc> {
    row.ready_at.unwrap_or(row.updated_at)
}
