//! A contact's phone sends media: it encrypts the file with a fresh media
//! key as WhatsApp does (wacore's encryption), uploads the ciphertext to
//! the simulated media host and sends the message with the direct path,
//! the key and both hashes. A file sent "expired" answers 404 until the
//! device asks for a re-upload (`<receipt type="server-error">`): then the
//! phone uploads it again under a new path and answers with an encrypted
//! `<notification type="mediaretry">`, as a real phone does.

use std::collections::HashMap;
use std::sync::Mutex;

use buffa::{Message as _, MessageField};
use bytes::Bytes;
use wacore::download::MediaType;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::error::{Result, SimError};
use crate::nodes::attr;
use crate::server::Shared;
use crate::session::Session;

/// What a contact sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
    Audio,
    Voice,
    Document,
    Sticker,
}

/// Options of a media message.
#[derive(Debug, Clone, Default)]
pub struct MediaOptions {
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub caption: Option<String>,
    /// The first link answers 404: only a re-upload recovers it.
    pub expired: bool,
    /// The length the message declares, when not the real one.
    pub declared_length: Option<u64>,
}

/// A sent media message: its id and the plaintext's SHA-256 (hex).
#[derive(Debug, Clone)]
pub struct SentMedia {
    pub id: String,
    pub sha256: String,
    pub direct_path: String,
}

/// Ciphertexts waiting for a re-upload request, by message id.
#[derive(Default)]
pub struct Expired {
    waiting: Mutex<HashMap<String, (Vec<u8>, Bytes)>>,
    reuploads: std::sync::atomic::AtomicUsize,
}

impl Expired {
    pub fn reuploads(&self) -> usize {
        self.reuploads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn media_type(kind: Kind) -> MediaType {
    match kind {
        Kind::Image => MediaType::Image,
        Kind::Video => MediaType::Video,
        Kind::Audio | Kind::Voice => MediaType::Audio,
        Kind::Document => MediaType::Document,
        Kind::Sticker => MediaType::Sticker,
    }
}

/// A media message ready to send: its file is on the media host (unless
/// sent "expired"), and the message names it.
#[derive(Clone)]
pub struct UploadedMedia {
    pub message: wa::Message,
    /// The plaintext's SHA-256 (hex).
    pub sha256: String,
    pub direct_path: String,
    key: Vec<u8>,
    upload: Bytes,
    expired: bool,
}

/// Encrypts `plaintext` as `kind` with a fresh media key, puts the
/// ciphertext on the media host and builds the message that names it.
pub fn upload_media(
    shared: &Shared,
    kind: Kind,
    plaintext: &[u8],
    options: MediaOptions,
) -> Result<UploadedMedia> {
    let enc = wacore::upload::encrypt_media(plaintext, media_type(kind))
        .map_err(|e| SimError::Protocol(format!("encrypt media: {e}")))?;
    let direct_path = format!("/v/t62.sim-24/in-{}", &hex(&enc.file_enc_sha256)[..24]);
    let upload = Bytes::from(enc.data_to_upload);
    if !options.expired {
        shared.media.put(direct_path.clone(), upload.clone());
    }
    let url = format!("https://{}{direct_path}", shared.http_authority());
    let length = options.declared_length.unwrap_or(plaintext.len() as u64);
    let key = enc.media_key.to_vec();
    let (sha, enc_sha) = (enc.file_sha256.to_vec(), enc.file_enc_sha256.to_vec());
    let mime = options.mime_type.clone();
    let mut message = wa::Message::default();
    match kind {
        Kind::Image => {
            message.image_message = MessageField::some(wa::message::ImageMessage {
                url: Some(url),
                mimetype: mime.or(Some("image/jpeg".into())),
                caption: options.caption.clone(),
                file_sha256: Some(sha),
                file_length: Some(length),
                media_key: Some(key.clone()),
                file_enc_sha256: Some(enc_sha),
                direct_path: Some(direct_path.clone()),
                width: Some(64),
                height: Some(48),
                ..Default::default()
            })
        }
        Kind::Video => {
            message.video_message = MessageField::some(wa::message::VideoMessage {
                url: Some(url),
                mimetype: mime.or(Some("video/mp4".into())),
                caption: options.caption.clone(),
                file_sha256: Some(sha),
                file_length: Some(length),
                media_key: Some(key.clone()),
                file_enc_sha256: Some(enc_sha),
                direct_path: Some(direct_path.clone()),
                seconds: Some(3),
                ..Default::default()
            })
        }
        Kind::Audio | Kind::Voice => {
            message.audio_message = MessageField::some(wa::message::AudioMessage {
                url: Some(url),
                mimetype: mime.or(Some("audio/ogg; codecs=opus".into())),
                file_sha256: Some(sha),
                file_length: Some(length),
                media_key: Some(key.clone()),
                file_enc_sha256: Some(enc_sha),
                direct_path: Some(direct_path.clone()),
                seconds: Some(2),
                ptt: Some(kind == Kind::Voice),
                ..Default::default()
            })
        }
        Kind::Document => {
            message.document_message = MessageField::some(wa::message::DocumentMessage {
                url: Some(url),
                mimetype: mime.or(Some("application/pdf".into())),
                caption: options.caption.clone(),
                file_name: options.file_name.clone(),
                file_sha256: Some(sha),
                file_length: Some(length),
                media_key: Some(key.clone()),
                file_enc_sha256: Some(enc_sha),
                direct_path: Some(direct_path.clone()),
                ..Default::default()
            })
        }
        Kind::Sticker => {
            message.sticker_message = MessageField::some(wa::message::StickerMessage {
                url: Some(url),
                mimetype: mime.or(Some("image/webp".into())),
                file_sha256: Some(sha),
                file_length: Some(length),
                media_key: Some(key.clone()),
                file_enc_sha256: Some(enc_sha),
                direct_path: Some(direct_path.clone()),
                ..Default::default()
            })
        }
    }
    Ok(UploadedMedia {
        message,
        sha256: hex(&enc.file_sha256),
        direct_path,
        key,
        upload,
        expired: options.expired,
    })
}

/// The phone of `from` sends an uploaded media message to `to`'s companions.
pub async fn send_uploaded(
    shared: &Shared,
    from: &str,
    to: &str,
    media: &UploadedMedia,
) -> Result<SentMedia> {
    let id = crate::control::phone_sends(shared, from, to, None, &media.message).await?;
    if media.expired {
        shared
            .expired
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (media.key.clone(), media.upload.clone()));
    }
    Ok(SentMedia {
        id,
        sha256: media.sha256.clone(),
        direct_path: media.direct_path.clone(),
    })
}

/// The phone of `from` sends `plaintext` as `kind` to `to`'s companions.
pub async fn send_media(
    shared: &Shared,
    from: &str,
    to: &str,
    kind: Kind,
    plaintext: &[u8],
    options: MediaOptions,
) -> Result<SentMedia> {
    let media = upload_media(shared, kind, plaintext, options)?;
    send_uploaded(shared, from, to, &media).await
}

/// A device asked for a re-upload (`<receipt type="server-error">`): the
/// phone uploads the file again and tells the device where.
pub fn on_server_error_receipt(session: &mut Session, node: &Node) {
    let Some(id) = attr(node, "id") else { return };
    let waiting = session
        .shared
        .expired
        .waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    let notification = match waiting {
        Some((key, upload)) => match reuploaded(session, &id, &key, upload) {
            Ok(node) => node,
            Err(e) => {
                tracing::warn!(%id, error = %e, "could not answer a re-upload request");
                return;
            }
        },
        // Not a message the phone can upload again.
        None => NodeBuilder::new("notification")
            .attr("type", "mediaretry")
            .attr("id", id.clone())
            .children([NodeBuilder::new("error").attr("code", "2").build()])
            .build(),
    };
    session.reply(notification);
}

fn reuploaded(session: &Session, id: &str, key: &[u8], upload: Bytes) -> Result<Node> {
    let direct_path = format!("/v/t62.sim-24/re-{id}");
    session.shared.media.put(direct_path.clone(), upload);
    session
        .shared
        .expired
        .reuploads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let plain = wa::MediaRetryNotification {
        stanza_id: Some(id.to_owned()),
        direct_path: Some(direct_path),
        result: Some(wa::media_retry_notification::ResultType::SUCCESS),
        ..Default::default()
    }
    .encode_to_vec();
    let mut secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(key, None, b"WhatsApp Media Retry Notification", &mut secret)
        .map_err(|e| SimError::Protocol(format!("hkdf: {e:?}")))?;
    let iv: [u8; 12] = rand::random();
    let mut sealed = Vec::new();
    wacore_libsignal::crypto::aes_256_gcm_encrypt(&secret, &iv, id.as_bytes(), &plain, &mut sealed)
        .map_err(|e| SimError::Protocol(format!("aes-gcm: {e:?}")))?;
    Ok(NodeBuilder::new("notification")
        .attr("type", "mediaretry")
        .attr("id", id.to_owned())
        .children([NodeBuilder::new("encrypt")
            .children([
                NodeBuilder::new("enc_p").bytes(sealed).build(),
                NodeBuilder::new("enc_iv").bytes(iv.to_vec()).build(),
            ])
            .build()])
        .build())
}
