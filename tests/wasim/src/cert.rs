//! The server's Noise certificate chain.
//!
//! The gateway's test build skips the chain's signatures
//! (`danger-skip-cert-chain-verify`), so they are zero; everything else the
//! client checks (issuer serials, the leaf key equal to the static key it
//! just decrypted) is real.
//!
//! Both certificates EXPIRED long ago on purpose: the client verifies no
//! validity window during the XX handshake, but caches the chain and tries
//! the IK pattern on the next connect while the cached leaf is still valid.
//! An expired leaf keeps every connect on XX, the only pattern served here.

use buffa::Message;
use waproto::whatsapp::{self as wa, cert_chain::noise_certificate::Details};

const INTERMEDIATE_SERIAL: u32 = 7;
const ROOT_SERIAL: u32 = 0;
/// 1970-01-01T00:00:02Z: expired, see the module comment.
const NOT_AFTER: u64 = 2;

fn certificate(details: Details) -> wa::cert_chain::NoiseCertificate {
    wa::cert_chain::NoiseCertificate {
        details: Some(details.encode_to_vec()),
        signature: Some(vec![0; 64]),
    }
}

/// The encoded `CertChain` whose leaf certifies `server_static_pub`.
pub fn chain_for(server_static_pub: &[u8; 32]) -> Vec<u8> {
    let intermediate = Details {
        serial: Some(INTERMEDIATE_SERIAL),
        issuer_serial: Some(ROOT_SERIAL),
        key: Some(vec![0x5a; 32]),
        not_before: Some(1),
        not_after: Some(NOT_AFTER),
    };
    let leaf = Details {
        serial: Some(INTERMEDIATE_SERIAL + 1),
        issuer_serial: Some(INTERMEDIATE_SERIAL),
        key: Some(server_static_pub.to_vec()),
        not_before: Some(1),
        not_after: Some(NOT_AFTER),
    };
    wa::CertChain {
        intermediate: buffa::MessageField::some(certificate(intermediate)),
        leaf: buffa::MessageField::some(certificate(leaf)),
    }
    .encode_to_vec()
}
