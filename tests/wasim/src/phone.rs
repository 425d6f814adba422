//! The phone's side of pairing: read the QR code the companion shows, and
//! vouch for the companion with an ADV device identity signed by the
//! account's identity key and MAC'd with the QR's ADV secret — the two
//! checks the client makes before it accepts `pair-success`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use buffa::Message;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use wacore_libsignal::protocol::KeyPair;
use waproto::whatsapp as wa;

use crate::error::{Result, SimError};

/// Domain separator of the account signature (ADV, E2EE accounts).
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];

/// The parts of a QR code: `ref,noisePub,identityPub,advSecret[,type]`.
#[derive(Debug, Clone)]
pub struct QrCode {
    pub reference: String,
    pub noise_pub: [u8; 32],
    pub identity_pub: [u8; 32],
    pub adv_secret: [u8; 32],
}

fn key32(part: &str, what: &str) -> Result<[u8; 32]> {
    let raw = STANDARD
        .decode(part)
        .map_err(|e| SimError::BadRequest(format!("QR {what}: {e}")))?;
    raw.try_into()
        .map_err(|_| SimError::BadRequest(format!("QR {what} is not 32 bytes")))
}

pub fn parse_qr(code: &str) -> Result<QrCode> {
    let parts: Vec<&str> = code.trim().split(',').collect();
    if parts.len() < 4 || parts[0].is_empty() {
        return Err(SimError::BadRequest(format!(
            "a QR code has at least 4 comma-separated parts, got {}",
            parts.len()
        )));
    }
    Ok(QrCode {
        reference: parts[0].to_owned(),
        noise_pub: key32(parts[1], "noise key")?,
        identity_pub: key32(parts[2], "identity key")?,
        adv_secret: key32(parts[3], "ADV secret")?,
    })
}

/// The `device-identity` bytes of `pair-success`: an
/// `ADVSignedDeviceIdentityHMAC` around the account-signed identity of
/// device `device_id`.
pub fn device_identity(
    account: &KeyPair,
    companion_identity_pub: &[u8; 32],
    adv_secret: &[u8; 32],
    device_id: u16,
    key_index: u32,
    timestamp: u64,
) -> Result<Vec<u8>> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(u32::from(device_id)),
        timestamp: Some(timestamp),
        key_index: Some(key_index),
        ..Default::default()
    }
    .encode_to_vec();
    let mut signed_message = ACCOUNT_SIGNATURE_PREFIX.to_vec();
    signed_message.extend_from_slice(&details);
    signed_message.extend_from_slice(companion_identity_pub);
    let signature = account
        .private_key
        .calculate_signature(&signed_message, &mut rand::rng())
        .map_err(|e| SimError::Signal(e.to_string()))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.public_key.public_key_bytes().to_vec()),
        account_signature: Some(signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(adv_secret)
        .map_err(|e| SimError::Signal(e.to_string()))?;
    mac.update(&signed);
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(mac.finalize().into_bytes().to_vec()),
        ..Default::default()
    }
    .encode_to_vec())
}
