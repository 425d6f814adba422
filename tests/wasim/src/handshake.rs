//! The Noise XX handshake, responder side (`-> e`, `<- e, ee, s, es`,
//! `-> s, se`), with the same hash/key schedule as the client's initiator
//! because both use `wacore_noise::NoiseHandshake`.

use buffa::Message;
use wacore_binary::consts::{NOISE_PATTERN_XX, WA_CONN_HEADER};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::whatsapp::{self as wa, HandshakeMessage, handshake_message::ServerHello};

use crate::error::{Result, SimError};
use crate::wire::{FrameReader, WsSink, send_frame};

/// What a finished handshake leaves: the transport ciphers, the client's
/// static Noise key (its device identity on the wire) and its payload.
pub struct Established {
    pub read: NoiseCipher,
    pub write: NoiseCipher,
    pub client_static: [u8; 32],
    pub payload: wa::ClientPayload,
}

fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| SimError::Protocol(format!("{what} is not 32 bytes")))
}

pub async fn respond(
    reader: &mut FrameReader,
    sink: &mut WsSink,
    server_static: &KeyPair,
    cert_chain: &[u8],
) -> Result<Established> {
    let hello = HandshakeMessage::decode_from_slice(&reader.next_frame().await?)?;
    let client_ephemeral = hello
        .client_hello
        .as_option()
        .and_then(|h| h.ephemeral.as_deref())
        .ok_or_else(|| SimError::Protocol("client hello without ephemeral".into()))?;
    let client_ephemeral = key32(client_ephemeral, "client ephemeral")?;

    let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
    noise.authenticate(&client_ephemeral);

    let ephemeral = KeyPair::generate(&mut rand::rng());
    let ephemeral_pub = ephemeral.public_key.public_key_bytes().to_vec();
    noise.authenticate(&ephemeral_pub);
    noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)?;
    let static_ct = noise.encrypt(server_static.public_key.public_key_bytes())?;
    noise.mix_shared_secret(server_static.private_key.serialize(), &client_ephemeral)?;
    let cert_ct = noise.encrypt(cert_chain)?;

    let server_hello = HandshakeMessage {
        server_hello: buffa::MessageField::some(ServerHello {
            ephemeral: Some(ephemeral_pub),
            r#static: Some(static_ct),
            payload: Some(cert_ct),
            ..Default::default()
        }),
        ..Default::default()
    };
    send_frame(sink, &server_hello.encode_to_vec()).await?;

    let finish = HandshakeMessage::decode_from_slice(&reader.next_frame().await?)?;
    let finish = finish
        .client_finish
        .as_option()
        .ok_or_else(|| SimError::Protocol("expected client finish".into()))?;
    let static_ct = finish
        .r#static
        .as_deref()
        .ok_or_else(|| SimError::Protocol("client finish without static".into()))?;
    let client_static = key32(&noise.decrypt(static_ct)?, "client static")?;
    noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
    let payload_ct = finish
        .payload
        .as_deref()
        .ok_or_else(|| SimError::Protocol("client finish without payload".into()))?;
    let payload = wa::ClientPayload::decode_from_slice(&noise.decrypt(payload_ct)?)?;

    // The split yields (initiator->responder, responder->initiator) keys.
    let (client_write, client_read) = noise.finish()?;
    Ok(Established {
        read: client_write,
        write: client_read,
        client_static,
        payload,
    })
}
