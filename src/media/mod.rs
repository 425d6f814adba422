//! Inbound media: every image, video, audio, voice note, document and
//! sticker a contact sends is downloaded through the instance's session,
//! decrypted as it streams, checked against the SHA-256 WhatsApp declared
//! and kept in a content-addressed store until retention deletes it.
//!
//! The row is written with the message (same transaction); the download
//! runs after the commit, never inside it (the client's acknowledgement
//! must not wait for a large file), a bounded number at a time, and ends
//! with `message.media_ready` or `message.media_failed`. Rows still
//! pending after a restart are picked up when their instance connects.

mod fetch;
mod record;
pub mod retention;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use entity::inbound_media::{self, Column, Model};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use tokio::sync::{Semaphore, watch};
use uuid::Uuid;

pub use record::{media_url, object};
pub use store::{LocalStore, MediaStore};

use crate::config::{MediaDownload, MediaSettings};
use crate::instances::sessions::WeakSessions;
use crate::sealing::Keyring;
use crate::webhooks::Webhooks;

/// The stable codes of a failed download (`error` in the `media` object).
pub mod codes {
    /// The message carried no usable download reference.
    pub const REFERENCE_MISSING: &str = "media_reference_missing";
    /// Larger than `media.max_inbound_bytes`; not downloaded.
    pub const TOO_LARGE: &str = "media_too_large";
    /// The media host no longer has it and the sender's phone did not
    /// upload it again.
    pub const EXPIRED: &str = "media_expired";
    /// The sender's phone could not upload it again.
    pub const REUPLOAD_FAILED: &str = "media_reupload_failed";
    /// The media host could not be reached (after retries).
    pub const UNREACHABLE: &str = "media_unreachable";
    /// It did not decrypt or its MAC did not verify.
    pub const CORRUPT: &str = "media_corrupt";
    /// Decrypted, but its SHA-256 is not the one WhatsApp declared.
    pub const HASH_MISMATCH: &str = "media_hash_mismatch";
    /// The media store failed (disk full, permissions) or the stored
    /// reference could not be opened (a missing encryption key).
    pub const STORE: &str = "media_store_error";
    /// The engine cannot download media.
    pub const UNSUPPORTED: &str = "media_unsupported";

    /// A sentence for the code, for the row's detail and problem bodies.
    pub fn describe(code: &str, max_bytes: u64) -> String {
        match code {
            REFERENCE_MISSING => "the message carried no download reference".into(),
            TOO_LARGE => format!("larger than media.max_inbound_bytes ({max_bytes} bytes)"),
            EXPIRED => "the media host no longer has it".into(),
            REUPLOAD_FAILED => "the sender's phone could not upload it again".into(),
            UNREACHABLE => "the media host could not be reached".into(),
            CORRUPT => "it did not decrypt or verify".into(),
            HASH_MISMATCH => "its SHA-256 is not the one WhatsApp declared".into(),
            STORE => "the media store failed".into(),
            _ => "the engine cannot download media".into(),
        }
    }
}

/// A media row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// Downloads that fail for a passing reason (host unreachable, disk) are
/// tried this many times before the row is failed.
const ATTEMPTS: i32 = 3;

/// The media service. Cheap to clone.
#[derive(Clone)]
pub struct Media(Arc<Inner>);

struct Inner {
    db: DatabaseConnection,
    keyring: Keyring,
    store: Arc<dyn MediaStore>,
    settings: MediaSettings,
    webhooks: Webhooks,
    permits: Semaphore,
    /// Downloads running in this process, by row; the receiver turns true
    /// when it ends.
    running: Mutex<HashMap<Uuid, watch::Receiver<bool>>>,
    /// Where live sessions are found (weak: the registry holds this).
    sessions: OnceLock<WeakSessions>,
}

impl Media {
    pub fn new(
        db: DatabaseConnection,
        keyring: Keyring,
        store: Arc<dyn MediaStore>,
        settings: MediaSettings,
        webhooks: Webhooks,
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            keyring,
            store,
            permits: Semaphore::new(settings.concurrency.max(1)),
            settings,
            webhooks,
            running: Mutex::new(HashMap::new()),
            sessions: OnceLock::new(),
        }))
    }

    /// The local folder store at `dir`, its leftover staging files removed.
    pub fn local_store(dir: std::path::PathBuf) -> std::io::Result<Arc<dyn MediaStore>> {
        std::fs::create_dir_all(&dir)?;
        let store = LocalStore::new(dir);
        store.clear_staging()?;
        Ok(Arc::new(store))
    }

    pub fn store(&self) -> &Arc<dyn MediaStore> {
        &self.0.store
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.0.settings
    }

    fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }

    pub(crate) fn bind_sessions(&self, sessions: WeakSessions) {
        let _ = self.0.sessions.set(sessions);
    }

    fn running(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Receiver<bool>>> {
        self.0.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After the commit of new rows: eager mode starts their downloads.
    pub fn committed(&self, rows: &[Model]) {
        if self.0.settings.download != MediaDownload::Eager {
            return;
        }
        for row in rows.iter().filter(|r| r.status == Status::Pending.as_str()) {
            self.spawn(row.id);
        }
    }

    /// Starts the download of row `id` in the background, unless running.
    pub fn spawn(&self, id: Uuid) {
        let media = self.clone();
        tokio::spawn(async move { media.run(id).await });
    }

    /// Picks up the instance's pending downloads (eager mode), e.g. after
    /// it connected or after a restart.
    pub fn resume(&self, instance_id: Uuid) {
        if self.0.settings.download != MediaDownload::Eager {
            return;
        }
        let media = self.clone();
        tokio::spawn(async move {
            match media.pending(Some(instance_id)).await {
                Ok(ids) => ids.into_iter().for_each(|id| media.spawn(id)),
                Err(e) => tracing::warn!(error = %e, "could not list pending media"),
            }
        });
    }

    /// Pending downloads of every instance with a live session (eager
    /// mode); the scheduler calls it so none is forgotten.
    pub async fn resume_all(&self) -> Result<usize, DbErr> {
        if self.0.settings.download != MediaDownload::Eager {
            return Ok(0);
        }
        let ids = self.pending(None).await?;
        let n = ids.len();
        ids.into_iter().for_each(|id| self.spawn(id));
        Ok(n)
    }

    async fn pending(&self, instance_id: Option<Uuid>) -> Result<Vec<Uuid>, DbErr> {
        let mut q =
            inbound_media::Entity::find().filter(Column::Status.eq(Status::Pending.as_str()));
        if let Some(id) = instance_id {
            q = q.filter(Column::InstanceId.eq(id));
        }
        Ok(q.order_by_asc(Column::CreatedAt)
            .all(&self.0.db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// The media of message `message_id` of the instance (the latest, if
    /// two chats reused an id).
    pub async fn find(&self, instance_id: Uuid, message_id: &str) -> Result<Option<Model>, DbErr> {
        inbound_media::Entity::find()
            .filter(Column::InstanceId.eq(instance_id))
            .filter(Column::WaMessageId.eq(message_id))
            .order_by_desc(Column::CreatedAt)
            .one(&self.0.db)
            .await
    }

    /// Downloads row `row` now (or waits for the download already running)
    /// and returns the row as it then stands.
    pub async fn ensure(&self, row: Model) -> Result<Model, DbErr> {
        if row.status != Status::Pending.as_str() {
            return Ok(row);
        }
        let waiting = self.running().get(&row.id).cloned();
        match waiting {
            Some(mut done) => {
                let _ = done.wait_for(|d| *d).await;
            }
            None => self.run(row.id).await,
        }
        Ok(inbound_media::Entity::find_by_id(row.id)
            .one(&self.0.db)
            .await?
            .unwrap_or(row))
    }

    /// Whether a download of row `id` is running in this process.
    pub fn is_running(&self, id: Uuid) -> bool {
        self.running().contains_key(&id)
    }
}
