//! The keys that seal and open values: the current key (`encryption_key`)
//! seals everything new; previous keys (`previous_encryption_keys`) only
//! open, so a rotated key keeps working until `wagate reencrypt` has
//! re-sealed what it sealed.
//!
//! AES-256-GCM with a random 96-bit nonce per value: the number of values
//! sealed under one key stays far below the 2^32 where random nonces
//! would start to risk a repeat.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

use super::context::Context;
use super::envelope::{self, HEADER_LEN, KeyId, NONCE_LEN, SealError};

pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("setting `{setting}`: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// `previous_encryption_keys`: a TOML list, or one string of keys separated
/// by commas or whitespace (the form an environment variable takes).
#[derive(Clone, Default, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct KeyList(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for KeyList {
    fn from(v: OneOrMany) -> Self {
        let all = match v {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        Self(
            all.iter()
                .flat_map(|s| s.split(|c: char| c == ',' || c.is_whitespace()))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

// Key material never reaches debug output.
impl std::fmt::Debug for KeyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyList(<{} redacted>)", self.0.len())
    }
}

struct SealingKey {
    id: KeyId,
    aead: LessSafeKey,
}

impl SealingKey {
    fn new(material: &[u8; KEY_LEN]) -> Result<Self, KeyringError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, material).map_err(|_| KeyringError::Invalid {
                setting: "encryption_key",
                reason: "the AEAD rejected the key".into(),
            })?;
        Ok(Self {
            id: key_id(material),
            aead: LessSafeKey::new(unbound),
        })
    }
}

/// A short public name of a key: the first bytes of a domain-separated
/// SHA-256 of it. It identifies the key without revealing anything usable.
fn key_id(material: &[u8; KEY_LEN]) -> KeyId {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"wagate sealing key id\0");
    ctx.update(material);
    let hash = ctx.finish();
    let mut id = [0u8; envelope::KEY_ID_LEN];
    id.copy_from_slice(&hash.as_ref()[..envelope::KEY_ID_LEN]);
    id
}

struct Inner {
    current: Option<SealingKey>,
    previous: Vec<SealingKey>,
    rng: SystemRandom,
}

/// Cheap to clone; passed to every reader and writer of sealed columns.
#[derive(Clone)]
pub struct Keyring(Arc<Inner>);

impl Default for Keyring {
    /// No keys: values are stored and read plain.
    fn default() -> Self {
        Self(Arc::new(Inner {
            current: None,
            previous: Vec::new(),
            rng: SystemRandom::new(),
        }))
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current_key_id())
            .field("previous", &self.0.previous.len())
            .finish()
    }
}

/// Where a stored value stands with respect to this keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Plain,
    /// Sealed with the current key.
    Current,
    /// Sealed with another key (hex id), previous or unknown.
    Other(String),
}

fn decode_key(
    setting: &'static str,
    what: &str,
    value: &str,
) -> Result<[u8; KEY_LEN], KeyringError> {
    let invalid = |reason: String| KeyringError::Invalid { setting, reason };
    // The value is never echoed: it is key material.
    let bytes = B64.decode(value.trim()).map_err(|_| {
        invalid(format!(
            "{what} is not base64 (generate one with `openssl rand -base64 32`)"
        ))
    })?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        invalid(format!(
            "{what} must decode to {KEY_LEN} bytes, not {} (generate one with \
             `openssl rand -base64 32`)",
            bytes.len()
        ))
    })
}

impl Keyring {
    /// A keyring from raw keys (tests, tools).
    pub fn new(
        current: Option<&[u8; KEY_LEN]>,
        previous: &[[u8; KEY_LEN]],
    ) -> Result<Self, KeyringError> {
        let current = current.map(SealingKey::new).transpose()?;
        let mut kept: Vec<SealingKey> = Vec::new();
        for material in previous {
            let key = SealingKey::new(material)?;
            let known = current.as_ref().is_some_and(|c| c.id == key.id)
                || kept.iter().any(|k| k.id == key.id);
            if !known {
                kept.push(key);
            }
        }
        Ok(Self(Arc::new(Inner {
            current,
            previous: kept,
            rng: SystemRandom::new(),
        })))
    }

    /// From the settings' base64 strings; an empty `current` means no key.
    /// Errors name the setting and never echo a value.
    pub fn from_config(current: &str, previous: &KeyList) -> Result<Self, KeyringError> {
        let current = if current.trim().is_empty() {
            None
        } else {
            Some(decode_key("encryption_key", "the key", current)?)
        };
        let previous = previous
            .0
            .iter()
            .enumerate()
            .map(|(i, v)| {
                decode_key(
                    "previous_encryption_keys",
                    &format!("key {} of the list", i + 1),
                    v,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(current.as_ref(), &previous)
    }

    /// The keyring the settings describe (validated at start, so later
    /// calls fail only if the settings were changed in between).
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, KeyringError> {
        Self::from_config(&settings.encryption_key, &settings.previous_encryption_keys)
    }

    /// Whether new values are sealed.
    pub fn seals(&self) -> bool {
        self.0.current.is_some()
    }

    /// The current key's id in hex, for logs and command output.
    pub fn current_key_id(&self) -> Option<String> {
        self.0.current.as_ref().map(|k| envelope::key_id_hex(&k.id))
    }

    fn find(&self, id: &KeyId) -> Option<&SealingKey> {
        self.0
            .current
            .iter()
            .chain(self.0.previous.iter())
            .find(|k| &k.id == id)
    }

    /// Seals `plain` for `ctx` with the current key; without one, returns it
    /// as it is.
    pub fn seal(&self, plain: &[u8], ctx: &Context) -> Result<Vec<u8>, SealError> {
        let Some(key) = &self.0.current else {
            return Ok(plain.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.0.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let header = envelope::header(&key.id, &nonce);
        let aad = associated(&header, ctx);
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + envelope::TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(plain);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut out[HEADER_LEN..],
            )
            .map_err(|_| SealError::TooLarge)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a stored value for `ctx`: a sealed one with the key that sealed
    /// it, a plain one (written before a key existed) as it is.
    pub fn open(&self, stored: Vec<u8>, ctx: &Context) -> Result<Vec<u8>, SealError> {
        let Some(parsed) = envelope::parse(&stored)? else {
            return Ok(stored);
        };
        let key = self
            .find(&parsed.key_id)
            .ok_or_else(|| SealError::UnknownKey(envelope::key_id_hex(&parsed.key_id)))?;
        let aad = associated(&stored[..HEADER_LEN], ctx);
        let mut buf = stored;
        let len = key
            .aead
            .open_within(
                Nonce::assume_unique_for_key(parsed.nonce),
                Aad::from(&aad),
                &mut buf,
                HEADER_LEN..,
            )
            .map_err(|_| SealError::Forged)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// [`Keyring::seal`] for a text column.
    pub fn seal_text(&self, plain: &str, ctx: &Context) -> Result<String, SealError> {
        if !self.seals() {
            return Ok(plain.to_owned());
        }
        Ok(envelope::to_text(&self.seal(plain.as_bytes(), ctx)?))
    }

    /// [`Keyring::open`] for a text column.
    pub fn open_text(&self, stored: &str, ctx: &Context) -> Result<String, SealError> {
        match envelope::from_text(stored)? {
            None => Ok(stored.to_owned()),
            Some(sealed) => String::from_utf8(self.open(sealed, ctx)?)
                .map_err(|_| SealError::Malformed("the opened text is not UTF-8")),
        }
    }

    /// Which key, if any, sealed a stored value.
    pub fn standing(&self, stored: &[u8]) -> Result<Standing, SealError> {
        Ok(match envelope::parse(stored)? {
            None => Standing::Plain,
            Some(h) if self.0.current.as_ref().is_some_and(|k| k.id == h.key_id) => {
                Standing::Current
            }
            Some(h) => Standing::Other(envelope::key_id_hex(&h.key_id)),
        })
    }

    /// [`Keyring::standing`] of a text column's value.
    pub fn text_standing(&self, stored: &str) -> Result<Standing, SealError> {
        match envelope::from_text(stored)? {
            None => Ok(Standing::Plain),
            Some(sealed) => self.standing(&sealed),
        }
    }
}

/// The header and the row's context, authenticated together.
fn associated(header: &[u8], ctx: &Context) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + ctx.as_bytes().len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(ctx.as_bytes());
    aad
}

#[cfg(test)]
mod tests;
