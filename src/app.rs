//! Wiring: settings, database, HTTP server, shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::Server;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};

use crate::config::Settings;
use crate::db::{self, DbError};
use crate::engine::Engine;
use crate::instances::sessions::{SessionError, Sessions};
use crate::messaging::send::Messenger;
use crate::outbound::OutboundError;
pub use crate::state::AppState;
use crate::webhooks::Webhooks;
use crate::webhooks::dispatcher::Dispatcher;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to start: no admin key is set (WAGATE_ADMIN_KEY) and the server \
         listens on {0}, which is not a loopback address"
    )]
    NoAdminKey(SocketAddr),
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("media store {dir}: {source}")]
    MediaStore {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("resuming sessions: {0}")]
    Resume(#[from] SessionError),
    #[error("WhatsApp engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Scheduler(#[from] crate::scheduler::SchedulerError),
    #[error("webhook dispatcher: {0}")]
    Outbound(#[from] OutboundError),
    #[error("configuration: {0}")]
    Keyring(#[from] crate::sealing::KeyringError),
    #[error("joining the cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("the HTTP client for forwarding between nodes: {0}")]
    Forwarding(#[from] reqwest::Error),
    #[error("reencrypt: {0}")]
    Reencrypt(Box<crate::sealing::reencrypt::ReencryptError>),
}

/// A server that is bound and migrated but not yet serving.
pub struct App {
    state: AppState,
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    /// The keyless metrics listener, when `metrics.listen` is set.
    metrics: Option<(TcpAcceptor, SocketAddr)>,
    /// Held until the server has stopped.
    _sqlite_lock: Option<db::SqliteLock>,
}

impl App {
    /// Connects and migrates the database, settles the admin key and binds
    /// the listening socket.
    pub async fn build(settings: Settings, engine: Arc<dyn Engine>) -> Result<Self, AppError> {
        let admin_key = admin_key(&settings)?;
        crate::metrics::handle();
        let keyring = crate::sealing::startup_keyring(&settings)?;
        let sqlite_lock = db::lock_sqlite(&settings)?;
        let db = db::connect(&settings).await?;
        db::migrate(&db).await?;
        let webhooks = Webhooks::new();
        let (sessions, event_loop) = Sessions::new(
            db.clone(),
            engine,
            Duration::from_secs(settings.whatsapp.answer_timeout_secs),
            webhooks.clone(),
            keyring.clone(),
        );
        tokio::spawn(event_loop);
        let dir = settings.media_dir();
        let store = crate::media::Media::local_store(dir.clone())
            .map_err(|source| AppError::MediaStore { dir, source })?;
        sessions.attach_media(crate::media::Media::new(
            db.clone(),
            keyring.clone(),
            store,
            settings.media.clone(),
            webhooks.clone(),
        ));
        let (acceptor, addr) = bind(settings.listen).await?;
        // SQLite is one node by construction (its file lock above).
        if settings.cluster.enabled
            && db.get_database_backend() == sea_orm::DatabaseBackend::Postgres
        {
            let cluster = crate::cluster::Cluster::join(db.clone(), &settings, addr).await?;
            sessions.attach_cluster(cluster);
        }
        let metrics = match settings.metrics.listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let messenger = Messenger::new(db.clone(), sessions.clone(), &settings)?;
        let state = AppState {
            db,
            settings: Arc::new(settings),
            admin_key: admin_key.into(),
            sessions,
            messenger,
            webhooks,
            jobs: Default::default(),
            keyring,
        };
        Ok(Self {
            state,
            acceptor,
            addr,
            metrics,
            _sqlite_lock: sqlite_lock,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The keyless metrics address actually bound, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish within the grace period and closes the pool.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
        let grace = Duration::from_secs(self.state.settings.shutdown_grace_secs);
        self.state.sessions.settle_after_start().await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Thousands of sessions may be stored: they reconnect in the
        // background, a bounded number at a time, while the API serves. On
        // a cluster, each node claims its share under leases instead.
        let sessions = self.state.sessions.clone();
        let cluster = sessions.cluster().cloned();
        let cluster_task = match cluster.clone() {
            Some(cluster) => Some(tokio::spawn(crate::cluster::run(
                cluster,
                sessions,
                stop_rx.clone(),
            ))),
            None => {
                let concurrency = self.state.settings.whatsapp.resume_concurrency;
                tokio::spawn(async move {
                    if let Err(e) = sessions.resume_all(concurrency).await {
                        tracing::error!(error = %e, "resuming stored sessions failed");
                    }
                });
                None
            }
        };
        self.state.jobs.start(self.state.clone()).await?;
        let mut metrics_stop = stop_rx.clone();
        // Numbers committed events for readers; runs whether or not this
        // process delivers webhooks. SQLite numbers them as they are
        // recorded (`sequencer::inline`), so it needs no sweeping task.
        let sequencer = (self.state.db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite)
            .then(|| {
                tokio::spawn(crate::webhooks::sequencer::run(
                    self.state.db.clone(),
                    self.state.webhooks.clone(),
                    stop_rx.clone(),
                ))
            });
        let dispatcher = if self.state.settings.webhooks.dispatcher {
            let dispatcher = Dispatcher::new(
                self.state.db.clone(),
                self.state.settings.clone(),
                self.state.webhooks.clone(),
                self.state.keyring.clone(),
            )?;
            Some(tokio::spawn(dispatcher.run(stop_rx, grace)))
        } else {
            None
        };
        // One signal stops both the server and the dispatcher; each drains
        // within the grace period.
        let jobs = self.state.jobs.clone();
        let shutdown = async move {
            shutdown.await;
            jobs.shutdown().await;
            let _ = stop_tx.send(true);
        };
        if let Some((acceptor, addr)) = self.metrics {
            tracing::info!(%addr, "serving metrics without a key");
            let endpoint = crate::api::metrics::open_endpoint(self.state.clone());
            tokio::spawn(async move {
                let stop = async move {
                    let _ = metrics_stop.wait_for(|s| *s).await;
                };
                if let Err(e) = Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(endpoint, stop, None)
                    .await
                {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        let routes = crate::api::routes(self.state.clone())?;
        tracing::info!(addr = %self.addr, "listening");
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(routes, shutdown, Some(grace))
            .await;
        // Disconnect without unlinking, so every session resumes next start.
        if tokio::time::timeout(grace, self.state.sessions.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("sessions did not disconnect within the grace period");
        }
        // The sessions are down: the others may take the instances now.
        if let Some(cluster) = cluster {
            if let Some(task) = cluster_task
                && tokio::time::timeout(Duration::from_secs(2), task)
                    .await
                    .is_err()
            {
                tracing::warn!("the cluster loop did not stop in time");
            }
            crate::cluster::leave(&cluster).await;
        }
        if let Some(dispatcher) = dispatcher
            && dispatcher.await.is_err()
        {
            tracing::warn!("the webhook dispatcher panicked");
        }
        if let Some(sequencer) = sequencer
            && sequencer.await.is_err()
        {
            tracing::warn!("the event sequencer panicked");
        }
        if let Err(e) = self.state.db.close_by_ref().await {
            tracing::warn!(error = %e, "closing the database pool");
        }
        tracing::info!("stopped");
        served.map_err(AppError::Serve)
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpAcceptor, SocketAddr), AppError> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(addr);
    Ok((acceptor, bound))
}

fn admin_key(settings: &Settings) -> Result<String, AppError> {
    if !settings.admin_key.is_empty() {
        return Ok(settings.admin_key.clone());
    }
    if !settings.listen.ip().is_loopback() {
        return Err(AppError::NoAdminKey(settings.listen));
    }
    // 244 random bits from the OS generator, shown once so a local user can
    // try the API; it changes on every start.
    let key = format!(
        "wag_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    println!("No WAGATE_ADMIN_KEY set; this run's admin key is: {key}");
    Ok(key)
}

/// SIGINT and SIGTERM, listened for from the moment they are installed, so a
/// signal that arrives while the server starts is not the default "die".
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}
