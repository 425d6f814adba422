//! One download: claim the row in this process, wait for a permit, stream
//! the plaintext through a hashing sink into a staging file, verify the
//! hash, move the file into place and record the outcome with its event,
//! in one transaction.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use entity::inbound_media::{self, Column, Model};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use super::store::Staged;
use super::{ATTEMPTS, Media, Status, codes, record};
use crate::engine::{MediaError, MediaSink};
use crate::webhooks::EventType;

/// How a download ended.
enum Outcome {
    Ready {
        hash: String,
        size: u64,
    },
    Failed {
        code: &'static str,
        detail: String,
    },
    /// Try again later (offline, or a passing failure with attempts left).
    Later,
}

/// What the sink and the downloader share: the staging file, the running
/// hash and count, and whether the limit was hit.
struct Progress {
    staged: Option<Box<dyn Staged>>,
    hasher: Sha256,
    written: u64,
    limit: u64,
    over_limit: bool,
}

struct Sink(Arc<Mutex<Progress>>);

impl Sink {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the staging file was already taken")
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut p = self.progress();
        if p.written + buf.len() as u64 > p.limit {
            p.over_limit = true;
            return Err(std::io::Error::other("over media.max_inbound_bytes"));
        }
        let n = p.staged.as_mut().ok_or_else(gone)?.write(buf)?;
        p.hasher.update(&buf[..n]);
        p.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.progress().staged.as_mut().ok_or_else(gone)?.flush()
    }
}

impl MediaSink for Sink {
    fn restart(&mut self) -> std::io::Result<()> {
        let mut p = self.progress();
        p.staged.as_mut().ok_or_else(gone)?.restart()?;
        p.hasher = Sha256::new();
        p.written = 0;
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let mut p = self.progress();
        let staged = p.staged.as_mut().ok_or_else(gone)?;
        staged.flush()?;
        staged.sync()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Media {
    /// Downloads row `id` unless this process already is.
    pub(super) async fn run(&self, id: Uuid) {
        let (done, waiting) = watch::channel(false);
        {
            let mut running = self.running();
            if running.contains_key(&id) {
                return;
            }
            running.insert(id, waiting);
        }
        let outcome = async {
            let _permit = self.0.permits.acquire().await;
            self.attempt(id).await
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, media_id = %id, "could not record a media download");
        }
        self.running().remove(&id);
        let _ = done.send(true);
    }

    async fn attempt(&self, id: Uuid) -> Result<(), DbErr> {
        let Some(row) = inbound_media::Entity::find_by_id(id)
            .one(&self.0.db)
            .await?
        else {
            return Ok(());
        };
        if row.status != Status::Pending.as_str() {
            return Ok(());
        }
        let outcome = self.download(&row).await?;
        self.finish(row, outcome).await
    }

    async fn download(&self, row: &Model) -> Result<Outcome, DbErr> {
        let failed = |code: &'static str, detail: String| Outcome::Failed { code, detail };
        let reference = match self.open_reference(row) {
            Ok(Some(r)) => r,
            Ok(None) => {
                let detail = codes::describe(codes::REFERENCE_MISSING, 0);
                return Ok(failed(codes::REFERENCE_MISSING, detail));
            }
            Err(e) => return Ok(failed(codes::STORE, format!("the reference: {e}"))),
        };
        let limit = self.0.settings.max_inbound_bytes;
        if reference.file_length > limit {
            return Ok(failed(
                codes::TOO_LARGE,
                codes::describe(codes::TOO_LARGE, limit),
            ));
        }
        let session = self
            .0
            .sessions
            .get()
            .and_then(|s| s.upgrade())
            .and_then(|s| s.session(row.instance_id));
        let Some(session) = session else {
            // Picked up again when the instance connects.
            return Ok(Outcome::Later);
        };
        inbound_media::Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .filter(Column::Id.eq(row.id))
            .exec(&self.0.db)
            .await?;
        let store = self.0.store.clone();
        let staged = match tokio::task::spawn_blocking(move || store.stage()).await {
            Ok(Ok(staged)) => staged,
            Ok(Err(e)) => return Ok(self.passing(row, codes::STORE, e.to_string())),
            Err(e) => return Ok(self.passing(row, codes::STORE, e.to_string())),
        };
        let progress = Arc::new(Mutex::new(Progress {
            staged: Some(staged),
            hasher: Sha256::new(),
            written: 0,
            limit,
            over_limit: false,
        }));
        let result = session
            .download_media(&reference, Box::new(Sink(progress.clone())))
            .await;
        let (staged, hasher, written, over_limit) = {
            let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
            let hasher = std::mem::take(&mut p.hasher);
            (p.staged.take(), hasher, p.written, p.over_limit)
        };
        if over_limit {
            return Ok(failed(
                codes::TOO_LARGE,
                codes::describe(codes::TOO_LARGE, limit),
            ));
        }
        if let Err(e) = result {
            return Ok(match e {
                MediaError::NotConnected => Outcome::Later,
                MediaError::Expired(d) => failed(codes::EXPIRED, d),
                MediaError::ReuploadFailed(d) => failed(codes::REUPLOAD_FAILED, d),
                MediaError::Corrupt(d) => failed(codes::CORRUPT, d),
                MediaError::Unsupported => failed(codes::UNSUPPORTED, e.to_string()),
                MediaError::Unreachable(d) => self.passing(row, codes::UNREACHABLE, d),
                MediaError::Io(d) => self.passing(row, codes::STORE, d),
            });
        }
        let hash = hex(&hasher.finalize());
        let declared = row
            .sha256
            .clone()
            .unwrap_or_else(|| hex(&reference.file_sha256));
        if hash != declared || hash != hex(&reference.file_sha256) {
            return Ok(failed(
                codes::HASH_MISMATCH,
                format!("declared {declared}, got {hash}"),
            ));
        }
        let Some(staged) = staged else {
            return Ok(self.passing(row, codes::STORE, "no staging file".into()));
        };
        let name = hash.clone();
        match tokio::task::spawn_blocking(move || staged.commit(&name)).await {
            Ok(Ok(())) => Ok(Outcome::Ready {
                hash,
                size: written,
            }),
            Ok(Err(e)) => Ok(self.passing(row, codes::STORE, e.to_string())),
            Err(e) => Ok(self.passing(row, codes::STORE, e.to_string())),
        }
    }

    /// A failure that may pass: tried again later while attempts remain.
    fn passing(&self, row: &Model, code: &'static str, detail: String) -> Outcome {
        tracing::warn!(media_id = %row.id, code, %detail, "media download failed");
        if row.attempts + 1 < ATTEMPTS {
            Outcome::Later
        } else {
            Outcome::Failed { code, detail }
        }
    }

    /// Records the outcome and its event, once: a row another process
    /// finished meanwhile is left as it is.
    async fn finish(&self, mut row: Model, outcome: Outcome) -> Result<(), DbErr> {
        let now = Utc::now();
        let (status, event) = match &outcome {
            Outcome::Later => return Ok(()),
            Outcome::Ready { .. } => (Status::Ready, EventType::MessageMediaReady),
            Outcome::Failed { .. } => (Status::Failed, EventType::MessageMediaFailed),
        };
        let mut update = inbound_media::Entity::update_many()
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            // Only the file is needed from now on; the key is dropped.
            .col_expr(Column::Reference, Expr::value(Option::<String>::None));
        match &outcome {
            Outcome::Ready { hash, size } => {
                let size = i64::try_from(*size).unwrap_or(i64::MAX);
                update = update
                    .col_expr(Column::StoredHash, Expr::value(hash.clone()))
                    .col_expr(Column::StoredSize, Expr::value(size))
                    .col_expr(Column::ReadyAt, Expr::value(now));
                row.stored_hash = Some(hash.clone());
                row.stored_size = Some(size);
                row.ready_at = Some(now);
            }
            Outcome::Failed { code, detail } => {
                update = update
                    .col_expr(Column::ErrorCode, Expr::value(*code))
                    .col_expr(Column::ErrorDetail, Expr::value(detail.clone()));
                row.error_code = Some((*code).to_owned());
                row.error_detail = Some(detail.clone());
            }
            Outcome::Later => {}
        }
        row.status = status.as_str().to_owned();
        row.updated_at = now;
        let txn = crate::db::begin_write(&self.0.db).await?;
        let moved = update
            .filter(Column::Id.eq(row.id))
            .filter(Column::Status.eq(Status::Pending.as_str()))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            return txn.commit().await;
        }
        let data = json!({
            "message_id": row.wa_message_id,
            "chat": row.chat_jid,
            "from": row.sender_jid,
            "media": record::object(&row, None, None),
            "error_detail": row.error_detail,
            "timestamp": record::changed_at(&row),
        });
        let mut outbox = self.0.webhooks.outbox();
        outbox.record(&txn, row.instance_id, event, data).await?;
        txn.commit().await?;
        outbox.committed();
        Ok(())
    }
}
