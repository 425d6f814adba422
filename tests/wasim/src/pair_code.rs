//! Pairing by code: the server's part (`companion_hello` -> a ref,
//! `primary_hello` notification) and the phone's (unwrap the companion's
//! ephemeral key with the code, then recover the ADV secret from the
//! companion's key bundle). The wrapping and key derivations are the
//! client's own (`wacore::pair_code`, `wacore::crypto`), used as libraries.

use wacore::pair_code::PairCodeUtils;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::{KeyPair, PrivateKey, PublicKey};

use crate::control;
use crate::error::{Result, SimError};
use crate::nodes::{SERVER, attr, bytes, child, result_to};
use crate::server::Shared;
use crate::session::Session;
use crate::world::{PairCodeFlow, Role};

fn key32(b: &[u8], what: &str) -> Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| SimError::Protocol(format!("{what} is not 32 bytes")))
}

/// `<iq xmlns="md"><link_code_companion_reg stage=..>` from a companion.
pub fn companion_iq(session: &mut Session, request: &Node, reg: &Node) {
    match attr(reg, "stage").as_deref() {
        Some("companion_hello") => hello(session, request, reg),
        Some("companion_finish") => {
            session.reply(result_to(request).build());
            if let Err(e) = finish(session, reg) {
                tracing::warn!(conn = session.conn, error = %e, "pair code finish failed");
            }
        }
        other => {
            tracing::warn!(conn = session.conn, ?other, "unknown pair code stage");
            session.reply(result_to(request).build());
        }
    }
}

fn hello(session: &mut Session, request: &Node, reg: &Node) {
    let phone = attr(reg, "jid")
        .and_then(|j| j.split('@').next().map(str::to_owned))
        .unwrap_or_default();
    let wrapped = child(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
        .and_then(bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let reference = format!("{:032x}", rand::random::<u128>()).into_bytes();
    if let Some(Role::Registering(r)) = session
        .shared
        .world
        .lock()
        .conns
        .get_mut(&session.conn)
        .map(|c| &mut c.role)
    {
        r.pair_code = Some(PairCodeFlow {
            phone,
            reference: reference.clone(),
            companion_wrapped: wrapped,
            entered: None,
        });
    }
    session.reply(
        result_to(request)
            .children([NodeBuilder::new("link_code_companion_reg")
                .children([NodeBuilder::new("link_code_pairing_ref")
                    .bytes(reference)
                    .build()])
                .build()])
            .build(),
    );
}

/// The user types `code` on the phone whose number the companion named.
/// Returns that phone number.
pub fn enter(shared: &Shared, code: &str) -> Result<String> {
    let world = &shared.world;
    let id = world.next_id();
    let mut state = world.lock();
    let (conn, flow) = state
        .conns
        .iter()
        .find_map(|(id, c)| match &c.role {
            Role::Registering(r) => r.pair_code.clone().map(|f| (*id, f)),
            _ => None,
        })
        .ok_or_else(|| SimError::NotFound("no companion waits for a pair code".into()))?;
    // A wrong code yields a wrong key here and a failed pairing later, as
    // on a real phone.
    let companion_ephemeral =
        PairCodeUtils::decrypt_primary_ephemeral_pub(&flow.companion_wrapped, code)
            .map_err(|e| SimError::BadRequest(e.to_string()))?;
    let ephemeral = KeyPair::generate(&mut rand::rng());
    let wrapped = PairCodeUtils::encrypt_ephemeral_pub(
        &key32(ephemeral.public_key.public_key_bytes(), "ephemeral")?,
        code,
    );
    let identity_pub = state
        .account(&flow.phone, id)?
        .keys
        .identity
        .public_key
        .public_key_bytes()
        .to_vec();
    if let Some(Role::Registering(r)) = state.conns.get_mut(&conn).map(|c| &mut c.role)
        && let Some(f) = r.pair_code.as_mut()
    {
        f.entered = Some((
            companion_ephemeral,
            ephemeral.private_key.serialize().to_vec(),
        ));
    }
    drop(state);
    world.send(
        conn,
        NodeBuilder::new("notification")
            .attr("from", SERVER)
            .attr("type", "link_code_companion_reg")
            .attr("id", shared.next_iq_id())
            .attr("t", crate::session::now_secs().to_string())
            .children([NodeBuilder::new("link_code_companion_reg")
                .attr("stage", "primary_hello")
                .children([
                    NodeBuilder::new("link_code_pairing_ref")
                        .bytes(flow.reference)
                        .build(),
                    NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                        .bytes(wrapped.to_vec())
                        .build(),
                    NodeBuilder::new("primary_identity_pub")
                        .bytes(identity_pub)
                        .build(),
                ])
                .build()])
            .build(),
    );
    Ok(flow.phone)
}

/// The companion's key bundle: the phone recovers the ADV secret the
/// companion derived, and vouches for it with `pair-success`.
fn finish(session: &mut Session, reg: &Node) -> Result<()> {
    let shared = session.shared.clone();
    let (flow, account_identity) = {
        let state = shared.world.lock();
        let flow = match state.conns.get(&session.conn).map(|c| &c.role) {
            Some(Role::Registering(r)) => r.pair_code.clone(),
            _ => None,
        }
        .ok_or_else(|| SimError::Protocol("companion_finish without a pair code".into()))?;
        let account = state
            .accounts
            .get(&flow.phone)
            .ok_or_else(|| SimError::NotFound(flow.phone.clone()))?;
        (flow, account.keys.identity.clone())
    };
    let (companion_ephemeral, phone_ephemeral) = flow
        .entered
        .clone()
        .ok_or_else(|| SimError::Protocol("companion_finish before the code".into()))?;
    let wrapped = child(reg, "link_code_pairing_wrapped_key_bundle")
        .and_then(bytes)
        .ok_or_else(|| SimError::Protocol("no key bundle".into()))?;
    let companion_identity = key32(
        child(reg, "companion_identity_public")
            .and_then(bytes)
            .unwrap_or_default(),
        "companion identity",
    )?;
    if wrapped.len() < 32 + 12 + 16 {
        return Err(SimError::Protocol("short key bundle".into()));
    }
    let (salt, rest) = wrapped.split_at(32);
    let (iv, sealed) = rest.split_at(12);

    let phone_ephemeral = PrivateKey::deserialize(&phone_ephemeral)?;
    let ephemeral_shared = phone_ephemeral
        .calculate_agreement(&PublicKey::from_djb_public_key_bytes(&companion_ephemeral)?)?;
    let mut bundle_key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &ephemeral_shared,
        Some(salt),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut bundle_key,
    )
    .map_err(|e| SimError::Signal(format!("{e:?}")))?;
    let mut bundle = Vec::new();
    wacore_libsignal::crypto::aes_256_gcm_decrypt(
        &bundle_key,
        &key32_12(iv)?,
        b"",
        sealed,
        &mut bundle,
    )
    .map_err(|e| SimError::Protocol(format!("key bundle does not open: {e:?}")))?;
    // companion identity (32) | primary identity (32) | random (32)
    let random = bundle
        .get(64..96)
        .ok_or_else(|| SimError::Protocol("short key bundle plaintext".into()))?;
    let identity_shared = account_identity
        .private_key
        .calculate_agreement(&PublicKey::from_djb_public_key_bytes(&companion_identity)?)?;
    let mut secret_input = Vec::with_capacity(96);
    secret_input.extend_from_slice(&ephemeral_shared);
    secret_input.extend_from_slice(&identity_shared);
    secret_input.extend_from_slice(random);
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&secret_input, None, b"adv_secret", &mut adv_secret)
        .map_err(|e| SimError::Signal(format!("{e:?}")))?;
    control::pair_success(
        &shared,
        session.conn,
        &flow.phone,
        &companion_identity,
        &adv_secret,
    )?;
    Ok(())
}

fn key32_12(b: &[u8]) -> Result<[u8; 12]> {
    b.try_into()
        .map_err(|_| SimError::Protocol("nonce is not 12 bytes".into()))
}
