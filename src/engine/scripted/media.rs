//! Inbound media the scripted engine "downloads": deterministic bytes
//! derived from the direct path, so a test (or a `wagate-scripted` user)
//! can build a message, let the gateway fetch it and compare. Direct paths
//! starting with `/expired`, `/corrupt` or `/unreachable` fail that way.

use std::io::Write;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{ScriptedEngine, ScriptedSession};
use crate::engine::{MediaError, MediaRef, MediaSink, ReceivedMedia, ReceivedMediaKind};

const CHUNK: usize = 64 * 1024;

/// Byte `i` of the file at `direct_path`.
fn seed(direct_path: &str) -> u64 {
    direct_path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Fills `buf` with the bytes of the file at offset `at`.
fn fill(seed: u64, at: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = (at + i as u64).wrapping_add(seed);
        *b = (x ^ (x >> 7) ^ (x >> 17)).wrapping_mul(0x9e37_79b9) as u8;
    }
}

/// The whole content the scripted engine serves for `direct_path`.
pub fn media_bytes(direct_path: &str, len: u64) -> Vec<u8> {
    let mut out = vec![0; usize::try_from(len).unwrap_or_default()];
    fill(seed(direct_path), 0, &mut out);
    out
}

fn sha256(direct_path: &str, len: u64) -> Vec<u8> {
    let seed = seed(direct_path);
    let mut hasher = Sha256::new();
    let mut buf = vec![0; CHUNK];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHUNK as u64) as usize;
        fill(seed, at, &mut buf[..n]);
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    hasher.finalize().to_vec()
}

/// Media as a contact's message would describe it, with a reference the
/// scripted engine can serve: `len` bytes at `direct_path`.
pub fn received_media(
    kind: ReceivedMediaKind,
    direct_path: &str,
    len: u64,
    mime_type: &str,
) -> ReceivedMedia {
    let sha = sha256(direct_path, len);
    ReceivedMedia {
        kind,
        mime_type: Some(mime_type.to_owned()),
        file_name: None,
        size: Some(len),
        caption: None,
        sha256: Some(sha.iter().map(|b| format!("{b:02x}")).collect()),
        duration_secs: None,
        width: None,
        height: None,
        reference: Some(Box::new(MediaRef {
            kind,
            direct_path: direct_path.to_owned(),
            media_key: vec![7; 32],
            file_sha256: sha,
            file_enc_sha256: vec![0; 32],
            file_length: len,
            message_id: String::new(),
            chat: String::new(),
            sender: String::new(),
            from_me: false,
        })),
    }
}

impl ScriptedEngine {
    /// Makes every download take this long first (to see `pending`).
    pub fn download_delay(&self, delay: Duration) {
        self.lock().download_delay = delay;
    }

    /// How many downloads the engine served or refused.
    pub fn downloads(&self) -> usize {
        self.lock().downloads
    }
}

impl ScriptedSession {
    pub(super) async fn download(
        &self,
        media: &MediaRef,
        mut sink: Box<dyn MediaSink>,
    ) -> Result<String, MediaError> {
        let delay = {
            let mut state = self.engine.lock();
            state.downloads += 1;
            state.download_delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let path = media.direct_path.clone();
        for (prefix, error) in [
            ("/expired", MediaError::Expired("scripted: 404".into())),
            ("/corrupt", MediaError::Corrupt("scripted: bad MAC".into())),
            ("/unreachable", MediaError::Unreachable("scripted".into())),
        ] {
            if path.starts_with(prefix) {
                return Err(error);
            }
        }
        let len = media.file_length;
        tokio::task::spawn_blocking(move || {
            let seed = seed(&path);
            let mut buf = vec![0; CHUNK];
            let mut at = 0;
            while at < len {
                let n = (len - at).min(CHUNK as u64) as usize;
                fill(seed, at, &mut buf[..n]);
                sink.write_all(&buf[..n])?;
                at += n as u64;
            }
            sink.finish()?;
            Ok::<_, std::io::Error>(path)
        })
        .await
        .map_err(|e| MediaError::Io(e.to_string()))?
        .map_err(|e| MediaError::Io(e.to_string()))
    }
}
