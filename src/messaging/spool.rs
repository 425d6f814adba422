//! Uploads spooled to an unnamed temporary file as they arrive, hashed and
//! with their head kept for sniffing on the way, so a file is never held
//! whole in memory.

use std::io::SeekFrom;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Bytes kept from the start of a file: enough for every magic number the
/// sniffer knows.
pub const HEAD_LEN: usize = 8 * 1024;

/// Size of each read from the upload (and so of each write to disk).
const CHUNK: usize = 64 * 1024;

/// A spooled file, positioned at its start.
#[derive(Debug)]
pub struct Spooled {
    pub file: std::fs::File,
    pub len: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The first `HEAD_LEN` bytes (fewer for a smaller file).
    pub head: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("spooling the file: {0}")]
    Io(#[from] std::io::Error),
}

/// Copies `reader` to a temporary file, reading at most `limit` bytes
/// (one more is a `TooLarge`). The file is deleted when the last handle
/// closes.
pub async fn spool(mut reader: impl AsyncRead + Unpin, limit: u64) -> Result<Spooled, SpoolError> {
    let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(std::io::Error::other)??;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(HEAD_LEN);
    let mut buf = vec![0u8; CHUNK];
    let mut len: u64 = 0;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        len += n as u64;
        if len > limit {
            return Err(SpoolError::TooLarge(limit));
        }
        hasher.update(chunk);
        let room = HEAD_LEN.saturating_sub(head.len());
        head.extend_from_slice(&chunk[..room.min(n)]);
        file.write_all(chunk).await?;
    }
    file.flush().await?;
    file.seek(SeekFrom::Start(0)).await?;
    Ok(Spooled {
        file: file.into_std().await,
        len,
        sha256: hasher.finalize().into(),
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn spools_hashes_and_keeps_the_head() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut spooled = spool(&data[..], 1 << 20).await.unwrap();
        assert_eq!(spooled.len, data.len() as u64);
        assert_eq!(spooled.head, data[..HEAD_LEN]);
        assert_eq!(spooled.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        let mut back = Vec::new();
        spooled.file.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);

        let small = spool(&b"abc"[..], 3).await.unwrap();
        assert_eq!(small.head, b"abc");
        assert!(matches!(
            spool(&b"abcd"[..], 3).await,
            Err(SpoolError::TooLarge(3))
        ));
    }
}
