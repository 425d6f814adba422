//! Message bodies at rest: JSON of what a message said, sealed with the
//! keyring (when a key is set) and bound to its table and row.

use sea_orm::DbErr;
use uuid::Uuid;

use crate::engine::Body;
use crate::sealing::{Context, Keyring};

pub const SENT: &str = "messages";
pub const RECEIVED: &str = "inbound_messages";

/// The stored form of `body` for row `row_id` of `table`.
pub fn seal(keyring: &Keyring, table: &str, row_id: Uuid, body: &Body) -> Result<String, DbErr> {
    let json = serde_json::to_string(body).map_err(|e| DbErr::Custom(e.to_string()))?;
    keyring
        .seal_text(&json, &Context::message_body(table, row_id))
        .map_err(|e| DbErr::Custom(format!("sealing a message body: {e}")))
}

/// The body stored in row `row_id` of `table`; `None` when there is none or
/// it no longer opens (a retired key), which only costs a quote its preview.
pub fn open(keyring: &Keyring, table: &str, row_id: Uuid, stored: Option<&str>) -> Option<Body> {
    let stored = stored?;
    let json = match keyring.open_text(stored, &Context::message_body(table, row_id)) {
        Ok(json) => json,
        Err(e) => {
            tracing::warn!(%row_id, table, error = %e, "a stored message body does not open");
            return None;
        }
    };
    serde_json::from_str(&json).ok()
}
