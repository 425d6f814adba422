//! Standard Webhooks signatures: HMAC-SHA256 over `{id}.{timestamp}.{body}`
//! keyed with the decoded bytes of a `whsec_` secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("the secret is not `whsec_` followed by base64")]
    BadSecret,
    #[error("the system random generator failed")]
    Random,
}

/// A new secret: `whsec_` and base64 of 32 bytes from the OS generator.
pub fn new_secret() -> Result<String, SigningError> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| SigningError::Random)?;
    Ok(format!("{PREFIX}{}", B64.encode(key)))
}

/// One `v1,<base64>` signature of a message.
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let encoded = secret.strip_prefix(PREFIX).unwrap_or(secret);
    let key_bytes = B64.decode(encoded).map_err(|_| SigningError::BadSecret)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(msg_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Ok(format!("v1,{}", B64.encode(ctx.sign().as_ref())))
}

/// The `webhook-signature` header value: one signature per secret, space
/// separated (during a rotation, both the new and the old secret sign).
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let sigs = secrets
        .into_iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sigs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_vector() {
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .expect("signs");
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn secrets_are_random_and_well_formed() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_ne!(a, b);
        let key = B64
            .decode(a.strip_prefix(PREFIX).expect("prefix"))
            .expect("b64");
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn two_secrets_two_signatures() {
        let (a, b) = (new_secret().expect("a"), new_secret().expect("b"));
        let header = signature_header([a.as_str(), b.as_str()], "msg_1", 1, b"{}").expect("sig");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&a, "msg_1", 1, b"{}").expect("a"));
        assert_eq!(parts[1], sign(&b, "msg_1", 1, b"{}").expect("b"));
    }
}
