//! Inbound media through whatsapp-rust: `download_to_writer` streams the
//! encrypted file and decrypts it on a blocking thread straight into the
//! gateway's sink (a small buffer, whatever the size). When the host no
//! longer has it (403/404/410, after the crate's own media-connection
//! refresh), the sender's phone is asked to upload it again, once
//! (`media_reupload`), and the new direct path is tried.

use std::io::{Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use whatsapp_rust::Jid;
use whatsapp_rust::client::Client;
use whatsapp_rust::download::{DownloadParams, DownloadWriter, MediaType};
use whatsapp_rust::{ErrorChainExt, MediaRetryResult, MediaReuploadRequest};

use crate::engine::{MediaError, MediaRef, MediaSink, ReceivedMediaKind};

/// The sink as the crate wants a writer: it may be handed over more than
/// once (the crate consumes it on failure), so it is shared.
#[derive(Clone)]
struct Writer(Arc<Mutex<Box<dyn MediaSink>>>);

impl Writer {
    fn sink(&self) -> std::sync::MutexGuard<'_, Box<dyn MediaSink>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sink().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink().flush()
    }
}

/// The crate only empties and rewinds the writer before an attempt and
/// rewinds it after; the sink is written front to back, so a seek to the
/// start is the only one it needs to honour (after `truncate(0)`).
impl Seek for Writer {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match pos {
            SeekFrom::Start(0) => Ok(0),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the media sink is written front to back",
            )),
        }
    }
}

impl DownloadWriter for Writer {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if len != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the media sink only empties",
            ));
        }
        self.sink().restart()
    }
}

fn media_type(kind: ReceivedMediaKind) -> MediaType {
    match kind {
        ReceivedMediaKind::Image => MediaType::Image,
        ReceivedMediaKind::Video => MediaType::Video,
        ReceivedMediaKind::Audio | ReceivedMediaKind::Voice => MediaType::Audio,
        ReceivedMediaKind::Document => MediaType::Document,
        ReceivedMediaKind::Sticker => MediaType::Sticker,
    }
}

/// How one attempt failed.
enum Attempt {
    /// The host refused the reference: worth a re-upload.
    Rejected(String),
    Failed(MediaError),
}

fn classify(err: &whatsapp_rust::anyhow::Error) -> Attempt {
    let chain: &(dyn std::error::Error + Send + Sync + 'static) = err.as_ref();
    let text = format!("{err:#}");
    match chain.http_status() {
        Some(401 | 403 | 404 | 410) => Attempt::Rejected(text),
        Some(_) => Attempt::Failed(MediaError::Unreachable(text)),
        None if chain.is_timeout() || chain.is_transport_unavailable() => {
            Attempt::Failed(MediaError::Unreachable(text))
        }
        // No status: the body did not verify, or writing failed.
        None if text.contains("MAC") || text.to_lowercase().contains("decrypt") => {
            Attempt::Failed(MediaError::Corrupt(text))
        }
        None if text.to_lowercase().contains("sha") => Attempt::Failed(MediaError::Corrupt(text)),
        None => Attempt::Failed(MediaError::Io(text)),
    }
}

async fn attempt(
    client: &Client,
    media: &MediaRef,
    path: &str,
    writer: &Writer,
) -> Result<(), Attempt> {
    let params = DownloadParams::encrypted(
        path,
        &media.media_key,
        &media.file_sha256,
        &media.file_enc_sha256,
        media.file_length,
        media_type(media.kind),
    );
    match client.download_to_writer(&params, writer.clone()).await {
        Ok(_) => Ok(()),
        Err(e) => Err(classify(&e)),
    }
}

/// Downloads `media` into `sink`; returns the direct path it came from.
pub async fn download(
    client: &Client,
    media: &MediaRef,
    sink: Box<dyn MediaSink>,
) -> Result<String, MediaError> {
    if !client.is_logged_in() || !client.is_connected() {
        return Err(MediaError::NotConnected);
    }
    let writer = Writer(Arc::new(Mutex::new(sink)));
    let rejected = match attempt(client, media, &media.direct_path, &writer).await {
        Ok(()) => return finish(&writer, media.direct_path.clone()),
        Err(Attempt::Failed(e)) => return Err(e),
        Err(Attempt::Rejected(why)) => why,
    };
    tracing::info!(message_id = %media.message_id, %rejected, "media expired on the host; asking for a re-upload");
    let chat: Jid = media
        .chat
        .parse()
        .map_err(|e| MediaError::ReuploadFailed(format!("chat `{}`: {e}", media.chat)))?;
    let sender: Option<Jid> = media.sender.parse().ok();
    // In a group the sender's phone is named; in a chat it is the chat.
    let participant = sender.filter(|s| s.to_string() != chat.to_string());
    let request = MediaReuploadRequest {
        msg_id: &media.message_id,
        chat_jid: &chat,
        media_key: &media.media_key,
        is_from_me: media.from_me,
        participant: participant.as_ref(),
    };
    let path = match client.media_reupload().request(&request).await {
        Ok(MediaRetryResult::Success { direct_path }) => direct_path,
        Ok(other) => {
            return Err(MediaError::ReuploadFailed(format!(
                "{other:?} (the host had answered: {rejected})"
            )));
        }
        Err(e) => return Err(MediaError::ReuploadFailed(e.to_string())),
    };
    match attempt(client, media, &path, &writer).await {
        Ok(()) => finish(&writer, path),
        Err(Attempt::Rejected(why)) => Err(MediaError::Expired(why)),
        Err(Attempt::Failed(e)) => Err(e),
    }
}

fn finish(writer: &Writer, path: String) -> Result<String, MediaError> {
    writer
        .sink()
        .finish()
        .map_err(|e| MediaError::Io(e.to_string()))?;
    Ok(path)
}
