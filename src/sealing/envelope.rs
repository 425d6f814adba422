//! The layout of a sealed value.
//!
//! ```text
//! magic "\0wgseal" (7) | version 1 (1) | key id (8) | nonce (12) | ciphertext | tag (16)
//! ```
//!
//! The magic tells sealed values from plain ones written before a key was
//! configured (device JSON starts with `{`, key records with protobuf tags;
//! a random value starts with these 8 bytes once in 2^64). The key id says
//! which key sealed the value, so opening picks it without trying each key
//! and rotation can tell what is left to re-seal. The whole header is part
//! of the associated data, so none of it can be changed unnoticed.
//!
//! Text columns hold `enc:v1:` followed by the standard base64 of the same
//! bytes; a plain webhook secret starts with `whsec_` instead.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

const MAGIC: &[u8; 7] = b"\0wgseal";
const VERSION: u8 = 1;
pub const KEY_ID_LEN: usize = 8;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN + NONCE_LEN;
const TEXT_PREFIX: &str = "enc:v1:";

pub type KeyId = [u8; KEY_ID_LEN];

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "the value was sealed with key {0}, which is neither `encryption_key` nor one of \
         `previous_encryption_keys`"
    )]
    UnknownKey(String),
    #[error("the sealed value does not authenticate: it was altered, or copied from another row")]
    Forged,
    #[error("the sealed value is malformed: {0}")]
    Malformed(&'static str),
    #[error("the value was sealed by a newer wagate (format version {0})")]
    UnsupportedVersion(u8),
    #[error("the system random generator failed")]
    Random,
    #[error("the value is too large to seal")]
    TooLarge,
}

/// A key id as operators see it in errors and in `wagate reencrypt` output.
pub fn key_id_hex(id: &KeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header of a value sealed under `key_id` with `nonce`.
pub fn header(key_id: &KeyId, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    let (magic, rest) = out.split_at_mut(MAGIC.len());
    magic.copy_from_slice(MAGIC);
    rest[0] = VERSION;
    rest[1..1 + KEY_ID_LEN].copy_from_slice(key_id);
    rest[1 + KEY_ID_LEN..].copy_from_slice(nonce);
    out
}

/// The parts of a sealed value's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub key_id: KeyId,
    pub nonce: [u8; NONCE_LEN],
}

/// `None` for a plain value; the header of a sealed one.
pub fn parse(stored: &[u8]) -> Result<Option<Header>, SealError> {
    if !stored.starts_with(MAGIC) {
        return Ok(None);
    }
    let rest = &stored[MAGIC.len()..];
    match rest.first() {
        Some(&VERSION) => {}
        Some(&other) => return Err(SealError::UnsupportedVersion(other)),
        None => return Err(SealError::Malformed("truncated header")),
    }
    if stored.len() < HEADER_LEN + TAG_LEN {
        return Err(SealError::Malformed("shorter than a header and a tag"));
    }
    let mut key_id = [0u8; KEY_ID_LEN];
    key_id.copy_from_slice(&rest[1..1 + KEY_ID_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&rest[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]);
    Ok(Some(Header { key_id, nonce }))
}

/// The text form of sealed bytes.
pub fn to_text(sealed: &[u8]) -> String {
    format!("{TEXT_PREFIX}{}", B64.encode(sealed))
}

/// `None` for plain text; the sealed bytes of a text-form value.
pub fn from_text(stored: &str) -> Result<Option<Vec<u8>>, SealError> {
    match stored.strip_prefix(TEXT_PREFIX) {
        Some(encoded) => B64
            .decode(encoded)
            .map(Some)
            .map_err(|_| SealError::Malformed("the text form is not base64")),
        // Another `enc:` version is a newer format, not a plain value.
        None if stored.starts_with("enc:") => {
            Err(SealError::Malformed("unknown text form version"))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_parses_back() {
        let h = header(&[7; KEY_ID_LEN], &[9; NONCE_LEN]);
        let mut sealed = h.to_vec();
        sealed.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(
            parse(&sealed).expect("parses"),
            Some(Header {
                key_id: [7; KEY_ID_LEN],
                nonce: [9; NONCE_LEN]
            })
        );
    }

    #[test]
    fn plain_values_are_not_sealed_ones() {
        assert_eq!(parse(b"{\"id\":1}").expect("plain"), None);
        assert_eq!(parse(b"").expect("plain"), None);
        assert_eq!(from_text("whsec_abc").expect("plain"), None);
    }

    #[test]
    fn truncated_or_newer_values_are_errors() {
        let h = header(&[1; KEY_ID_LEN], &[2; NONCE_LEN]);
        assert!(matches!(parse(&h), Err(SealError::Malformed(_))));
        assert!(matches!(parse(&h[..7]), Err(SealError::Malformed(_))));
        let mut newer = h.to_vec();
        newer[7] = 2;
        newer.extend_from_slice(&[0; TAG_LEN]);
        assert!(matches!(
            parse(&newer),
            Err(SealError::UnsupportedVersion(2))
        ));
        assert!(from_text("enc:v9:AAAA").is_err());
        assert!(from_text("enc:v1:not base64!").is_err());
    }
}
