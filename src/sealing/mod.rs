//! Encryption at rest: webhook secrets and the WhatsApp key material are
//! sealed with an AEAD key from the settings before they reach the
//! database, and opened on the way back.
//!
//! - [`envelope`]: the byte layout of a sealed value (magic, version, key
//!   id, nonce, ciphertext and tag) and its text form for text columns.
//! - [`context`]: what each sealed value is bound to (table, owner, row key),
//!   so a value copied into another row fails to open.
//! - [`keyring`]: the current key, which seals, and previous keys, which
//!   only open; built from `encryption_key` and `previous_encryption_keys`.
//! - [`reencrypt`]: the `wagate reencrypt` command, which re-seals every
//!   stored value with the current key after a rotation.

pub mod context;
pub mod envelope;
pub mod keyring;
pub mod reencrypt;

pub use context::Context;
pub use envelope::SealError;
pub use keyring::{KeyList, Keyring, KeyringError};

/// The keyring a server starts with. Without a current key it says so once,
/// at start: secrets then sit in the database as they are.
pub fn startup_keyring(settings: &crate::config::Settings) -> Result<Keyring, KeyringError> {
    let keyring = Keyring::from_settings(settings)?;
    match keyring.current_key_id() {
        Some(id) => tracing::info!(key_id = %id, "secrets at rest are encrypted"),
        None => tracing::warn!(
            "no encryption_key (WAGATE_ENCRYPTION_KEY) is set: webhook secrets and WhatsApp \
             session keys are stored unencrypted"
        ),
    }
    Ok(keyring)
}
