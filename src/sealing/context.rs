//! The associated data each sealed value is bound to. A value opens only
//! with the context it was sealed with, so swapping ciphertexts between
//! rows, instances or columns is detected instead of silently accepted.

use uuid::Uuid;

/// What a sealed value belongs to, as unambiguous bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Context(Vec<u8>);

impl Context {
    /// Each part is length-prefixed, so `("ab", "c")` and `("a", "bc")`
    /// cannot collide.
    fn of(parts: &[&[u8]]) -> Self {
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
        for part in parts {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part);
        }
        Self(out)
    }

    /// An instance's serialised device (`wa_devices.data`).
    pub fn device(instance_id: Uuid) -> Self {
        Self::of(&[b"wa_devices", instance_id.as_bytes()])
    }

    /// One row of an instance's key-value store (`wa_kv.value`).
    pub fn kv(instance_id: Uuid, space: &str, key: &str) -> Self {
        Self::of(&[
            b"wa_kv",
            instance_id.as_bytes(),
            space.as_bytes(),
            key.as_bytes(),
        ])
    }

    /// A webhook's signing secret; `column` tells the current secret from
    /// the previous one, so the two cannot be exchanged either.
    pub fn webhook(webhook_id: Uuid, column: WebhookSecret) -> Self {
        Self::of(&[b"webhooks", webhook_id.as_bytes(), column.name().as_bytes()])
    }

    /// What a message said (`messages.body`, `inbound_messages.body`),
    /// bound to its table and row.
    pub fn message_body(table: &str, row_id: Uuid) -> Self {
        Self::of(&[table.as_bytes(), b"body", row_id.as_bytes()])
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The sealed columns of `webhooks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookSecret {
    Current,
    Previous,
    /// A broker sink's credentials.
    Credentials,
}

impl WebhookSecret {
    fn name(self) -> &'static str {
        match self {
            WebhookSecret::Current => "secret",
            WebhookSecret::Previous => "previous_secret",
            WebhookSecret::Credentials => "credentials",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_do_not_run_together() {
        let id = Uuid::nil();
        assert!(Context::kv(id, "ab", "c") != Context::kv(id, "a", "bc"));
        assert!(
            Context::webhook(id, WebhookSecret::Current)
                != Context::webhook(id, WebhookSecret::Previous)
        );
        assert!(Context::device(id) != Context::device(Uuid::max()));
    }
}
