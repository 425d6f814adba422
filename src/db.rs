//! Connecting to the database and bringing its schema up to date.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the folder for the SQLite database {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] DbErr),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] DbErr),
    #[error(
        "another wagate process is serving the SQLite database {path} (it holds {path}.lock); \
         SQLite serves one gateway process at a time: stop the other one, or use PostgreSQL \
         to run several nodes"
    )]
    InUse { path: String },
    #[error("cannot lock the SQLite database {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// Held while a process serves a SQLite database: a second gateway process
/// on the same file would resume the same sessions and steal each other's
/// WhatsApp sockets. The OS drops the lock when the process dies, however
/// it dies. Within one process the lock is shared (tests and benches run
/// several servers on one file, one after another or side by side).
#[derive(Debug, Clone)]
pub struct SqliteLock(#[allow(dead_code)] Arc<std::fs::File>);

/// The locks this process holds, by lock file.
static HELD: Mutex<Vec<(PathBuf, Weak<std::fs::File>)>> = Mutex::new(Vec::new());

/// Takes the serving lock of the configured SQLite database (`<file>.lock`
/// beside it); `None` on PostgreSQL and for an in-memory database.
pub fn lock_sqlite(settings: &Settings) -> Result<Option<SqliteLock>, DbError> {
    let Some(path) = settings.sqlite_path() else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let failed = |source| DbError::Lock {
        path: shown.clone(),
        source,
    };
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(failed)?;
    let key = std::fs::canonicalize(&lock_path).map_err(failed)?;
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|(_, lock)| lock.strong_count() > 0);
    if let Some(lock) = held
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, l)| l.upgrade())
    {
        return Ok(Some(SqliteLock(lock)));
    }
    match file.try_lock() {
        Ok(()) => {
            let file = Arc::new(file);
            held.push((key, Arc::downgrade(&file)));
            Ok(Some(SqliteLock(file)))
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(DbError::InUse { path: shown }),
        Err(std::fs::TryLockError::Error(source)) => Err(failed(source)),
    }
}

/// Opens the pool. A SQLite file and its folder are created if missing, and
/// SQLite runs in WAL mode so readers never wait for the writer.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbError> {
    if let Some(parent) = settings.sqlite_path().and_then(|p| p.parent())
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
            path: parent.display().to_string(),
            source,
        })?;
    }
    let mut options = ConnectOptions::new(settings.database.url.clone());
    let timeout = Duration::from_secs(settings.database.connect_timeout_secs);
    options
        .max_connections(settings.database.max_connections)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
        });
    Database::connect(options).await.map_err(DbError::Connect)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbError> {
    Migrator::up(db, None).await.map_err(DbError::Migrate)
}

/// Whether the database answers and every migration this binary knows has
/// been applied, within a few seconds (a probe must answer promptly). The
/// error says what failed.
pub async fn check_ready(db: &DatabaseConnection) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), readiness(db)).await {
        Ok(result) => result,
        Err(_) => Err("database did not answer within 3 s".into()),
    }
}

async fn readiness(db: &DatabaseConnection) -> Result<(), String> {
    db.ping()
        .await
        .map_err(|e| format!("database unreachable: {e}"))?;
    let pending = Migrator::get_pending_migrations_read_only(db)
        .await
        .map_err(|e| format!("cannot read migration state: {e}"))?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(format!("{} migration(s) not applied", pending.len()))
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock
/// at BEGIN: a deferred transaction that reads first and writes later fails
/// at once with "database is locked" when another writer got in between,
/// instead of waiting its turn.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
