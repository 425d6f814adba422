//! Where media files live: a small trait, so an object store can follow,
//! and the local folder behind it. Files are named by the SHA-256 of their
//! content (never by anything a sender chose) and appear only whole: a
//! download writes a staging file that is renamed into place once verified.

use std::io::{Seek, Write};
use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

/// A file being written; nothing of it is visible until [`Staged::commit`].
pub trait Staged: Write + Send {
    /// Empties it, to start over.
    fn restart(&mut self) -> std::io::Result<()>;
    /// Flushes it to stable storage.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Makes it the content of `hash` (atomically; an existing file of the
    /// same content stays).
    fn commit(self: Box<Self>, hash: &str) -> std::io::Result<()>;
}

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;

/// Content-addressed storage for media files. Blocking calls
/// ([`MediaStore::stage`] and what it returns) run on blocking threads.
#[async_trait::async_trait]
pub trait MediaStore: Send + Sync {
    /// A new staging file.
    fn stage(&self) -> std::io::Result<Box<dyn Staged>>;
    /// `len` bytes of `hash` from `start`; `None` when it is not stored.
    async fn read(&self, hash: &str, start: u64, len: u64) -> std::io::Result<Option<Reader>>;
    /// Whether `hash` is stored.
    async fn contains(&self, hash: &str) -> std::io::Result<bool>;
    /// Deletes `hash`; deleting what is not there is not an error.
    async fn delete(&self, hash: &str) -> std::io::Result<()>;
}

/// Whether `hash` can name a file: 64 lowercase hex digits, so a name from
/// the database can never climb out of the folder.
pub fn valid_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn bad_hash() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a content hash")
}

/// Files in a local folder: `<dir>/<first two hex digits>/<hash>`, staging
/// files in `<dir>/tmp` (the same file system, so the rename is atomic).
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, hash: &str) -> std::io::Result<PathBuf> {
        if !valid_hash(hash) {
            return Err(bad_hash());
        }
        Ok(self.dir.join(&hash[..2]).join(hash))
    }

    /// Staging files a crash left behind; run at start, before any download.
    pub fn clear_staging(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.dir.join("tmp")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

struct LocalStaged {
    file: tempfile::NamedTempFile,
    dir: PathBuf,
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Staged for LocalStaged {
    fn restart(&mut self) -> std::io::Result<()> {
        let file = self.file.as_file_mut();
        file.set_len(0)?;
        file.rewind()?;
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.as_file().sync_all()
    }

    fn commit(self: Box<Self>, hash: &str) -> std::io::Result<()> {
        if !valid_hash(hash) {
            return Err(bad_hash());
        }
        let folder = self.dir.join(&hash[..2]);
        std::fs::create_dir_all(&folder)?;
        // A rename over an existing file of the same content is harmless.
        self.file.persist(folder.join(hash)).map_err(|e| e.error)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl MediaStore for LocalStore {
    fn stage(&self) -> std::io::Result<Box<dyn Staged>> {
        let tmp = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let file = tempfile::Builder::new().prefix("dl-").tempfile_in(&tmp)?;
        Ok(Box::new(LocalStaged {
            file,
            dir: self.dir.clone(),
        }))
    }

    async fn read(&self, hash: &str, start: u64, len: u64) -> std::io::Result<Option<Reader>> {
        let path = self.path(hash)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        file.seek(std::io::SeekFrom::Start(start)).await?;
        Ok(Some(Box::pin(file.take(len))))
    }

    async fn contains(&self, hash: &str) -> std::io::Result<bool> {
        tokio::fs::try_exists(self.path(hash)?).await
    }

    async fn delete(&self, hash: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(hash)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn staged_files_appear_whole_under_their_hash() {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalStore::new(dir.path());
        let hash = "ab".repeat(32);
        assert!(!store.contains(&hash).await.expect("contains"));
        let mut staged = store.stage().expect("stage");
        staged.write_all(b"first attempt").expect("write");
        staged.restart().expect("restart");
        staged.write_all(b"hello world").expect("write");
        staged.sync().expect("sync");
        staged.commit(&hash).expect("commit");
        let mut out = String::new();
        let mut reader = store
            .read(&hash, 6, 5)
            .await
            .expect("read")
            .expect("stored");
        reader.read_to_string(&mut out).await.expect("read");
        assert_eq!(out, "world");
        store.delete(&hash).await.expect("delete");
        store.delete(&hash).await.expect("deleting twice");
        assert!(store.read(&hash, 0, 1).await.expect("read").is_none());
    }

    #[test]
    fn names_from_outside_are_refused() {
        let store = LocalStore::new("/tmp/x");
        assert!(store.path("../../etc/passwd").is_err());
        assert!(store.path(&"AB".repeat(32)).is_err());
        assert!(store.path(&"0f".repeat(32)).is_ok());
    }
}
