//! Test harness: a fresh database per test (a SQLite file, or a PostgreSQL
//! database cloned from a migrated template when `TEST_DATABASE_URL` names a
//! PostgreSQL server) and the real server on an ephemeral port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use figment::Figment;
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use std::sync::Arc;

use tokio::sync::oneshot;
use wagate::app::App;
use wagate::config::Settings;
use wagate::engine::scripted::ScriptedEngine;
use wagate::webhooks::Webhooks;

pub const ADMIN_KEY: &str = "test-admin-key";

/// The PostgreSQL server tests run against, if any: an URL of a database
/// the tests may use to create and drop others (e.g. `.../postgres`).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

/// A database of one test's own. SQLite files go with their temp folder;
/// PostgreSQL databases carry their creation time in their name and are
/// dropped by a later run once stale, which costs no test any time.
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new() -> Self {
        match postgres_admin_url() {
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("wagate.db");
                let db = Self {
                    url: format!("sqlite://{}", path.display()),
                    postgres: None,
                    _dir: Some(dir),
                };
                // Migrated up front, like a clone of the PostgreSQL template.
                let conn = Database::connect(format!("{}?mode=rwc", db.url))
                    .await
                    .expect("create sqlite db");
                migration::Migrator::up(&conn, None).await.expect("migrate");
                conn.close().await.ok();
                db
            }
            Some(admin_url) => {
                let template = template(&admin_url).await;
                let name = format!(
                    "wagate_t_{}_{}",
                    chrono::Utc::now().timestamp(),
                    uuid::Uuid::new_v4().simple()
                );
                let admin = Database::connect(&admin_url).await.expect("connect admin");
                exec(
                    &admin,
                    &format!("CREATE DATABASE {name} TEMPLATE {template}"),
                )
                .await;
                admin.close().await.ok();
                Self {
                    url: replace_db_name(&admin_url, &name),
                    postgres: Some((admin_url, name)),
                    _dir: None,
                }
            }
        }
    }

    /// A small pool of the test's own, beside the server's.
    pub async fn connect(&self) -> DatabaseConnection {
        let mut opts = sea_orm::ConnectOptions::new(self.url.clone());
        opts.max_connections(3).sqlx_logging(false);
        Database::connect(opts).await.expect("connect test db")
    }

    /// Takes the database away from under a running server: PostgreSQL drops
    /// it; SQLite, which keeps an open file alive, loses its migration record.
    pub async fn take_away(&self) {
        match &self.postgres {
            Some((admin_url, name)) => {
                let admin = Database::connect(admin_url).await.expect("connect admin");
                exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
                admin.close().await.ok();
            }
            None => {
                let db = self.connect().await;
                exec(&db, "DROP TABLE seaql_migrations").await;
                db.close().await.ok();
            }
        }
    }
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let slash = base.rfind('/').expect("database url has a path");
    let mut out = format!("{}/{}", &base[..slash], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The migrated template database, built once per build of the test binary
/// (its name carries the binary's modification time, so an edited migration
/// never meets a stale template) and renamed into place only when complete.
async fn template(admin_url: &str) -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    let name = NAME
        .get_or_init(|| {
            let built = std::env::current_exe()
                .and_then(|p| p.metadata())
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("wagate_tpl_{built}")
        })
        .clone();

    let mut opts = sea_orm::ConnectOptions::new(admin_url.to_owned());
    opts.max_connections(1).sqlx_logging(false);
    let admin = Database::connect(opts).await.expect("connect admin");
    // Test binaries run in parallel processes: one builds, the others wait.
    exec(&admin, "SELECT pg_advisory_lock(717171)").await;
    drop_stale_databases(&admin, &name).await;
    let exists = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ))
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        exec(
            &admin,
            &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        )
        .await;
        exec(&admin, &format!("CREATE DATABASE {building}")).await;
        let db = Database::connect(replace_db_name(admin_url, &building))
            .await
            .expect("connect template");
        migration::Migrator::up(&db, None)
            .await
            .expect("migrate template");
        db.close().await.ok();
        exec(
            &admin,
            &format!("ALTER DATABASE {building} RENAME TO {name}"),
        )
        .await;
    }
    exec(&admin, "SELECT pg_advisory_unlock(717171)").await;
    admin.close().await.ok();
    name
}

/// Drops test databases and templates made over an hour ago.
async fn drop_stale_databases(admin: &DatabaseConnection, keep: &str) {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.set(()).is_err() {
        return;
    }
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database \
             WHERE datname LIKE 'wagate\\_t\\_%' OR datname LIKE 'wagate\\_tpl\\_%'",
        ))
        .await
        .expect("list test databases");
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        // wagate_t_<secs>_<random> and wagate_tpl_<secs>
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        if created < cutoff && !name.starts_with(keep) {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// Settings for a test server on `db`: an ephemeral loopback port and the
/// test admin key, whatever the environment says. Webhooks may reach the
/// test receivers on 127.0.0.1, and retry on a compressed schedule.
pub fn settings(db: &TestDb) -> Settings {
    settings_with(db, |f| f)
}

/// [`settings`] with more layered on top.
pub fn settings_with(db: &TestDb, tweak: impl FnOnce(Figment) -> Figment) -> Settings {
    Settings::from_figment(tweak(base_figment(db))).expect("test settings")
}

pub fn base_figment(db: &TestDb) -> Figment {
    Settings::defaults_figment()
        .merge(("listen", "127.0.0.1:0"))
        .merge(("admin_key", ADMIN_KEY))
        .merge(("log", "warn"))
        .merge(("shutdown_grace_secs", 5))
        .merge(("database.url", db.url.as_str()))
        .merge(("database.max_connections", 5))
        .merge(("allow_private_targets", true))
        // Tests poll fast; the one test of the limit turns it on.
        .merge(("api.rate_limit_per_sec", 0.0))
        // Tests send in bursts; the pacing tests set their own interval.
        .merge(("messaging.pacing.min_interval_ms", 0))
        .merge(("messaging.pacing.jitter_ms", 0))
        .merge(("webhooks.retry_schedule_secs", vec![0.0, 0.05, 0.1, 0.1]))
        .merge(("webhooks.request_timeout_secs", 5.0))
        .merge(("webhooks.lease_secs", 10.0))
        .merge(("webhooks.sweep_interval_secs", 0.05))
}

/// An HTTP client for tests (reqwest's rustls needs the process's crypto
/// provider installed first).
pub fn http_client() -> reqwest::Client {
    wagate::outbound::install_crypto_provider();
    reqwest::Client::new()
}

/// The real server, in this process, on its own database, with the scripted
/// WhatsApp engine unless a test gives it another.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub engine: ScriptedEngine,
    pub http: reqwest::Client,
    /// The running server's dispatcher handle: `wake()` it after recording.
    pub webhooks: Webhooks,
    // Dropping it stops the server.
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDb::new().await).await
    }

    pub async fn spawn_on(db: TestDb) -> Self {
        let settings = settings(&db);
        Self::spawn_scripted(db, settings, ScriptedEngine::new()).await
    }

    /// A server whose settings are the test defaults with `tweak` on top.
    pub async fn spawn_with(tweak: impl FnOnce(Figment) -> Figment) -> Self {
        let db = TestDb::new().await;
        let settings = settings_with(&db, tweak);
        Self::spawn_scripted(db, settings, ScriptedEngine::new()).await
    }

    pub async fn spawn_scripted(db: TestDb, settings: Settings, engine: ScriptedEngine) -> Self {
        Self::spawn_with_engine(db, settings, Arc::new(engine.clone()), engine).await
    }

    /// With any engine; `scripted` is what `self.engine` then names (unused
    /// by the app unless it is `engine` itself).
    pub async fn spawn_with_engine(
        db: TestDb,
        settings: Settings,
        engine: Arc<dyn wagate::engine::Engine>,
        scripted: ScriptedEngine,
    ) -> Self {
        // Warnings and errors of the server show with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let app = App::build(settings, engine).await.expect("build app");
        let addr = app.local_addr();
        let webhooks = app.state().webhooks.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            app.run(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            db,
            engine: scripted,
            http: http_client(),
            webhooks,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server (without waiting for it) and hands back its database.
    pub fn into_db(self) -> TestDb {
        self.db
    }

    /// A request with the admin key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_KEY)
    }
}

/// A JSON response: status, content type and parsed body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Self {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// Asserts this is a problem document with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {:?}", self.body);
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "content type {} of {:?}",
            self.content_type,
            self.body
        );
        assert_eq!(self.body["code"], code, "{:?}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "problem has a detail: {:?}",
            self.body
        );
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Reply {
    Reply::from(rb.send().await.expect("request")).await
}

/// Polls `check` until it returns `Some`, failing the test past a deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
