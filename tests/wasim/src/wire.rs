//! The WhatsApp transport over one WebSocket: 3-byte length-prefixed frames,
//! the client's intro header on its first frame, and after the handshake
//! AES-GCM with a per-direction counter around binary-encoded nodes.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{Message, WebSocketStream};
use wacore_binary::Node;
use wacore_noise::NoiseCipher;
use wacore_noise::framing::{FrameDecoder, encode_frame};

use crate::error::{Result, SimError};

pub type Ws = WebSocketStream<TcpStream>;
pub type WsSink = futures_util::stream::SplitSink<Ws, Message>;
pub type WsStream = futures_util::stream::SplitStream<Ws>;

/// Reads whole frames, stripping the intro the client puts before its first
/// one: an optional edge-routing pre-intro (`ED\0\1` + 3-byte length +
/// routing data) and the 4-byte `WA` connection header.
pub struct FrameReader {
    stream: WsStream,
    decoder: FrameDecoder,
    intro_pending: bool,
}

impl FrameReader {
    pub fn new(stream: WsStream) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(),
            intro_pending: true,
        }
    }

    pub async fn next_frame(&mut self) -> Result<bytes::BytesMut> {
        loop {
            if let Some(frame) = self.decoder.decode_frame() {
                return Ok(frame);
            }
            let message = self.stream.next().await.ok_or(SimError::Closed)??;
            if message.is_close() {
                return Err(SimError::Closed);
            }
            if !message.is_binary() {
                continue;
            }
            let payload = message.into_payload();
            let mut data: &[u8] = &payload;
            if self.intro_pending {
                self.intro_pending = false;
                data = strip_intro(data)?;
            }
            self.decoder.feed(data);
        }
    }
}

fn strip_intro(mut data: &[u8]) -> Result<&[u8]> {
    if data.starts_with(b"ED") {
        let len = data
            .get(4..7)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
            .ok_or_else(|| SimError::Protocol("short edge-routing pre-intro".into()))?;
        data = data
            .get(7 + len..)
            .ok_or_else(|| SimError::Protocol("short edge-routing data".into()))?;
    }
    match data.get(..2) {
        Some(b"WA") => Ok(&data[4.min(data.len())..]),
        _ => Err(SimError::Protocol("missing WA connection header".into())),
    }
}

/// Sends one frame as one binary WebSocket message.
pub async fn send_frame(sink: &mut WsSink, payload: &[u8]) -> Result<()> {
    let framed = encode_frame(payload, None).map_err(|e| SimError::Protocol(e.to_string()))?;
    sink.send(Message::binary(Bytes::from(framed))).await?;
    Ok(())
}

/// The encrypted half of the transport once the handshake is done.
pub struct Decryptor {
    cipher: NoiseCipher,
    counter: u32,
}

impl Decryptor {
    pub fn new(cipher: NoiseCipher) -> Self {
        Self { cipher, counter: 0 }
    }

    /// Decrypts one frame into a node.
    pub fn open(&mut self, mut frame: bytes::BytesMut) -> Result<Node> {
        self.cipher
            .decrypt_in_place_with_counter(self.counter, &mut frame)?;
        self.counter = self.counter.wrapping_add(1);
        let unpacked = wacore_binary::util::unpack(&frame)?;
        Ok(wacore_binary::marshal::unmarshal_ref(&unpacked)?.to_owned())
    }
}

pub struct Encryptor {
    cipher: NoiseCipher,
    counter: u32,
}

impl Encryptor {
    pub fn new(cipher: NoiseCipher) -> Self {
        Self { cipher, counter: 0 }
    }

    /// Encodes and encrypts one node (uncompressed).
    pub fn seal(&mut self, node: &Node) -> Result<Vec<u8>> {
        let plain = wacore_binary::marshal(node)?;
        let sealed = self.cipher.encrypt_with_counter(self.counter, &plain)?;
        self.counter = self.counter.wrapping_add(1);
        Ok(sealed)
    }
}
