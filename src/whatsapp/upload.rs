//! Media upload without holding a file whole: an upload spooled to a file is
//! encrypted into a second unnamed temp file, then streamed from it to the
//! media host (whatsapp-rust's `upload_stream`), so memory stays constant
//! whatever the size. Media fetched from a URL is already in memory and goes
//! through `upload` as it is.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom};
use std::sync::Arc;

use whatsapp_rust::client::Client;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::upload::{UploadOptions, UploadResponse};
use whatsapp_rust::wacore::upload::{UploadSource, encrypt_media_streaming};

use crate::engine::{EngineError, MediaBody};

/// Encrypts and uploads `body`; returns what the media message needs.
pub(super) async fn upload(
    client: &Client,
    body: MediaBody,
    media_type: MediaType,
) -> Result<UploadResponse, EngineError> {
    let refused = |e: &dyn std::fmt::Display| EngineError::Refused(format!("media upload: {e}"));
    match body {
        MediaBody::Bytes(bytes) => client
            .upload(bytes, media_type, UploadOptions::default())
            .await
            .map_err(|e| refused(&e)),
        MediaBody::File { file, .. } => {
            let (source, info) = tokio::task::spawn_blocking(move || encrypt(file, media_type))
                .await
                .map_err(|e| refused(&e))?
                .map_err(|e| refused(&e))?;
            client
                .upload_stream(source, info, media_type)
                .await
                .map_err(|e| refused(&e))
        }
    }
}

/// Encrypts the plaintext file into an unnamed temp file (gone when the
/// last handle closes).
fn encrypt(
    mut plaintext: File,
    media_type: MediaType,
) -> Result<
    (
        FileSource,
        whatsapp_rust::wacore::upload::EncryptedMediaInfo,
    ),
    std::io::Error,
> {
    plaintext.seek(SeekFrom::Start(0))?;
    let mut ciphertext = tempfile::tempfile()?;
    let info = {
        let writer = BufWriter::with_capacity(64 * 1024, &mut ciphertext);
        encrypt_media_streaming(
            BufReader::with_capacity(64 * 1024, plaintext),
            writer,
            media_type,
        )
        .map_err(std::io::Error::other)?
    };
    let len = ciphertext.metadata()?.len();
    Ok((
        FileSource {
            file: Arc::new(ciphertext),
            len,
        },
        info,
    ))
}

/// The encrypted file, re-readable from any offset (the crate resumes and
/// fails over between hosts by reading it again).
struct FileSource {
    file: Arc<File>,
    len: u64,
}

impl UploadSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader_from(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            PositionedReader {
                file: Arc::clone(&self.file),
                position: offset.min(self.len),
            },
        )))
    }
}

/// Reads by position rather than through the file's shared cursor, so two
/// readers of one file (a retry while an abandoned attempt still holds its
/// reader) cannot move each other.
struct PositionedReader {
    file: Arc<File>,
    position: u64,
}

impl Read for PositionedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(&self.file, buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_encrypted_file_decrypts_to_the_plaintext_from_any_offset() {
        let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&plaintext).expect("write");
        let (source, info) = encrypt(file, MediaType::Document).expect("encrypt");
        assert_eq!(info.file_length, plaintext.len() as u64);
        assert_eq!(
            source.len(),
            whatsapp_rust::wacore::upload::encrypted_len(plaintext.len()) as u64
        );

        let mut whole = Vec::new();
        source
            .reader_from(0)
            .expect("reader")
            .read_to_end(&mut whole)
            .expect("read");
        let decrypted = whatsapp_rust::wacore::download::DownloadUtils::verify_and_decrypt(
            &whole,
            &info.media_key,
            MediaType::Document,
        )
        .expect("decrypts");
        assert_eq!(decrypted, plaintext);

        let mut tail = Vec::new();
        source
            .reader_from(1000)
            .expect("reader")
            .read_to_end(&mut tail)
            .expect("read");
        assert_eq!(tail, whole[1000..]);
    }
}
