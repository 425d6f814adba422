//! The registry of live sessions (one client per instance) and the
//! operations on them: login, pair by code, logout, resume, stop. Engine
//! events come through one channel and are applied in arrival order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::instances::{Column, Entity, Status};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;
use uuid::Uuid;

mod resume;

use super::Instance;
use super::lifecycle;
use super::store::{self, InstanceError};
use crate::engine::{Engine, EngineError, EngineEvent, EventSink, Session};
use crate::webhooks::Webhooks;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("instance {0} is logged out; create a new instance to pair again")]
    LoggedOut(Uuid),
    #[error("instance {0} is already online")]
    AlreadyOnline(Uuid),
    #[error("instance {0} is not paired")]
    NotPaired(Uuid),
    #[error("instance {0} has no QR code now; start pairing with POST /v1/instances/{0}/login")]
    NoQr(Uuid),
    #[error("WhatsApp did not answer within {0} s")]
    Timeout(u64),
    #[error("pairing failed: {0}")]
    PairingFailed(String),
    #[error("WhatsApp engine: {0}")]
    Engine(#[from] EngineError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A QR code to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qr {
    pub code: String,
    pub expires_at: DateTime<Utc>,
    pub attempt: u32,
}

/// What a pairing in progress has shown so far.
#[derive(Debug, Clone, Default)]
pub struct Pairing {
    pub qr: Option<Qr>,
    pub online: bool,
    pub failure: Option<String>,
}

struct Live {
    session: Option<Arc<dyn Session>>,
    pairing: watch::Sender<Pairing>,
}

/// How a start-up reconnect is getting on, for logs and `/readyz`.
#[derive(Debug, Default)]
pub struct ResumeProgress {
    pub total: std::sync::atomic::AtomicUsize,
    pub done: std::sync::atomic::AtomicUsize,
    pub finished: std::sync::atomic::AtomicBool,
}

/// Per-instance retry state of the reconnect sweep.
struct Backoff {
    failures: u32,
    next_try: std::time::Instant,
}

struct Inner {
    db: DatabaseConnection,
    backoff: Mutex<HashMap<Uuid, Backoff>>,
    progress: ResumeProgress,
    engine: Arc<dyn Engine>,
    sink: EventSink,
    live: Mutex<HashMap<Uuid, Live>>,
    answer_timeout: Duration,
    webhooks: Webhooks,
    /// Seals what messages said before it is stored.
    keyring: crate::sealing::Keyring,
    /// Set at shutdown: no session starts any more.
    closing: std::sync::atomic::AtomicBool,
    /// Asks the event loop to apply everything queued so far.
    drain: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// Inbound media: rows written with their messages, downloads after.
    media: std::sync::OnceLock<crate::media::Media>,
    /// On a cluster node: which instances this node may connect.
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
    /// Group subjects for inbound group messages, looked up once each.
    subjects: crate::messaging::group_subjects::GroupSubjects,
}

/// A registry handle that does not keep it alive (for services it holds).
#[derive(Clone)]
pub struct WeakSessions(std::sync::Weak<Inner>);

impl WeakSessions {
    pub fn upgrade(&self) -> Option<Sessions> {
        self.0.upgrade().map(|inner| Sessions { inner })
    }
}

/// What an event lane carries.
enum LaneItem {
    Event(Uuid, EngineEvent),
    /// Answered once everything before it in the lane was applied.
    Drained(oneshot::Sender<()>),
}

/// Engine events are applied by this many workers at once, so one slow
/// transaction (a PostgreSQL commit) does not hold up every instance; an
/// instance's events always take the same worker, in the order they came.
const EVENT_LANES: usize = 8;

/// The worker that applies an instance's events.
pub fn lane(id: Uuid) -> usize {
    (id.as_u128() % EVENT_LANES as u128) as usize
}

/// Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

impl Sessions {
    /// The registry and its event loop, which the caller spawns. Events
    /// are recorded through `webhooks`' outboxes.
    pub fn new(
        db: DatabaseConnection,
        engine: Arc<dyn Engine>,
        answer_timeout: Duration,
        webhooks: Webhooks,
        keyring: crate::sealing::Keyring,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (sink, mut events) = mpsc::channel(1024);
        let (drain, mut drains) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
        let sessions = Self {
            inner: Arc::new(Inner {
                db,
                engine,
                sink,
                live: Mutex::new(HashMap::new()),
                backoff: Mutex::new(HashMap::new()),
                progress: ResumeProgress::default(),
                answer_timeout,
                webhooks,
                keyring,
                closing: Default::default(),
                drain,
                media: Default::default(),
                cluster: Default::default(),
                subjects: Default::default(),
            }),
        };
        // Holds only a weak reference so dropping every `Sessions` ends it.
        let weak = Arc::downgrade(&sessions.inner);
        let event_loop = async move {
            let mut lanes = Vec::with_capacity(EVENT_LANES);
            let mut workers = tokio::task::JoinSet::new();
            let auto_read = weak.clone();
            workers.spawn(async move {
                let mut ticks = tokio::time::interval(crate::messaging::auto_read::INTERVAL);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let Some(inner) = auto_read.upgrade() else {
                        break;
                    };
                    let sessions = Sessions { inner };
                    if let Err(e) = crate::messaging::auto_read::tick(&sessions).await {
                        tracing::warn!(error = %e, "auto_read round failed");
                    }
                }
            });
            for _ in 0..EVENT_LANES {
                let (tx, mut rx) = mpsc::channel::<LaneItem>(256);
                let weak = weak.clone();
                workers.spawn(async move {
                    while let Some(item) = rx.recv().await {
                        let (id, event) = match item {
                            LaneItem::Event(id, event) => (id, event),
                            LaneItem::Drained(done) => {
                                let _ = done.send(());
                                continue;
                            }
                        };
                        let Some(inner) = weak.upgrade() else { break };
                        let span = tracing::info_span!("instance", instance_id = %id);
                        Sessions { inner }.handle(id, event).instrument(span).await;
                    }
                });
                lanes.push(tx);
            }
            // Once drained for shutdown, later events (a session that was
            // still connecting) are not applied: the pool is about to close,
            // and a start re-derives every status. A durable batch dropped
            // here is not acknowledged, so WhatsApp delivers it again.
            let mut drained = false;
            loop {
                tokio::select! {
                    biased;
                    event = events.recv() => {
                        let Some((id, event)) = event else { break };
                        if drained {
                            tracing::debug!(instance_id = %id, "engine event after shutdown; not applied");
                            continue;
                        }
                        if lanes[lane(id)].send(LaneItem::Event(id, event)).await.is_err() {
                            break;
                        }
                    }
                    Some(done) = drains.recv() => {
                        while let Ok((id, event)) = events.try_recv() {
                            let _ = lanes[lane(id)].send(LaneItem::Event(id, event)).await;
                        }
                        let mut waits = Vec::with_capacity(lanes.len());
                        for lane in &lanes {
                            let (tx, rx) = oneshot::channel();
                            if lane.send(LaneItem::Drained(tx)).await.is_ok() {
                                waits.push(rx);
                            }
                        }
                        for wait in waits {
                            let _ = wait.await;
                        }
                        drained = true;
                        let _ = done.send(());
                    }
                }
            }
            drop(lanes);
            while workers.join_next().await.is_some() {}
        };
        (sessions, event_loop)
    }

    fn live(&self) -> MutexGuard<'_, HashMap<Uuid, Live>> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(&self, id: Uuid, event: EngineEvent) {
        // A node whose lease lapsed (paused, cut off) must not overwrite
        // what the instance's new owner records; a durable batch dropped
        // here is not acknowledged, so WhatsApp delivers it to the owner.
        if let Some(cluster) = self.inner.cluster.get()
            && !cluster.holds(id)
        {
            tracing::warn!("event of an instance this node no longer holds; not applied");
            self.stop(id).await;
            return;
        }
        // The epoch in the database has the last word: a status change is
        // fenced in its own UPDATE, anything else is checked just before.
        let fence = self.inner.cluster.get().and_then(|c| c.fence(id));
        let inserts =
            event.is_message() || matches!(event, EngineEvent::Call(_) | EngineEvent::Group(_));
        if inserts
            && let Some(fence) = &fence
            && self.fenced_out(id, fence).await
        {
            return;
        }
        if let EngineEvent::Call(call) = &event {
            let (db, hooks, keyring) = (&self.inner.db, &self.inner.webhooks, &self.inner.keyring);
            let session = self.session(id);
            if let Err(e) =
                crate::messaging::calls::incoming(db, hooks, keyring, session, id, call).await
            {
                tracing::error!(error = %e, "could not handle an incoming call");
            }
            return;
        }
        let mut event = event;
        if event.is_message() || matches!(event, EngineEvent::Group(_)) {
            let session = self.session(id);
            let subjects = &self.inner.subjects;
            subjects.apply(id, session.as_deref(), &mut event).await;
        }
        if let EngineEvent::Group(group) = &event {
            let hooks = &self.inner.webhooks;
            if let Err(e) = crate::messaging::groups::report(&self.inner.db, hooks, id, group).await
            {
                tracing::error!(error = %e, "could not record a group event");
            }
            return;
        }
        if event.is_message() {
            let hooks = &self.inner.webhooks;
            let media = self.inner.media.get();
            if let Err(e) = crate::messaging::tracking::apply(
                &self.inner.db,
                hooks,
                &self.inner.keyring,
                id,
                &event,
                media,
            )
            .await
            {
                tracing::error!(error = %e, "could not persist a message event");
            }
            return;
        }
        let (db, hooks) = (&self.inner.db, &self.inner.webhooks);
        let applied = match lifecycle::apply(db, hooks, id, &event, fence.as_ref()).await {
            Ok(applied) => applied,
            Err(e) => {
                tracing::error!(error = %e, ?event, "could not persist an engine event");
                None
            }
        };
        if applied.is_none()
            && let Some(fence) = &fence
            && self.fenced_out(id, fence).await
        {
            return;
        }
        if let Some(applied) = &applied {
            tracing::info!(
                from = %lifecycle::status_name(applied.previous),
                to = %lifecycle::status_name(applied.status),
                "instance event applied"
            );
        }
        match event {
            EngineEvent::Qr {
                code,
                valid_for,
                attempt,
            } => self.update(id, |p| {
                p.qr = Some(Qr {
                    code,
                    expires_at: Utc::now()
                        + chrono::Duration::from_std(valid_for).unwrap_or_default(),
                    attempt,
                });
            }),
            EngineEvent::Connected { .. } => {
                self.inner
                    .backoff
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                self.update(id, |p| {
                    p.qr = None;
                    p.online = true;
                });
                if let Some(media) = self.inner.media.get() {
                    media.resume(id);
                }
            }
            EngineEvent::QrExhausted => {
                self.update(id, |p| {
                    p.qr = None;
                    p.failure = Some("every QR code expired without a scan".into());
                });
                self.stop(id).await;
            }
            EngineEvent::PairError { reason } => self.update(id, |p| p.failure = Some(reason)),
            EngineEvent::LoggedOut { .. } => {
                self.live().remove(&id);
                if applied.is_some()
                    && let Err(e) = self.inner.engine.wipe(id).await
                {
                    tracing::error!(error = %e, "could not wipe the keys of a logged-out device");
                }
            }
            EngineEvent::Disconnected { .. }
            | EngineEvent::StreamReplaced
            | EngineEvent::TemporaryBan { .. }
            | EngineEvent::ConnectFailure { .. } => self.update(id, |p| p.online = false),
            EngineEvent::Paired { .. }
            | EngineEvent::ServerAck { .. }
            | EngineEvent::Receipt { .. }
            | EngineEvent::Message(_)
            | EngineEvent::Call(_)
            | EngineEvent::Group(_)
            | EngineEvent::Messages { .. } => {}
        }
    }

    /// Seals and opens what messages said.
    pub fn keyring(&self) -> &crate::sealing::Keyring {
        &self.inner.keyring
    }

    /// The database, for the messaging jobs that run beside the sessions.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Records inbound media with `media` and lets it find live sessions.
    /// Once; later calls change nothing.
    pub fn attach_media(&self, media: crate::media::Media) {
        media.bind_sessions(WeakSessions(Arc::downgrade(&self.inner)));
        let _ = self.inner.media.set(media);
    }

    /// Makes this registry a cluster node's: sessions start only under a
    /// lease. Once; later calls change nothing.
    pub fn attach_cluster(&self, cluster: crate::cluster::Cluster) {
        let _ = self.inner.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.get()
    }

    /// Disconnects an instance's session here (no logout) because another
    /// node is to connect it.
    pub async fn give_up(&self, id: Uuid) {
        self.stop(id).await;
    }

    pub fn media(&self) -> Option<&crate::media::Media> {
        self.inner.media.get()
    }

    /// The outboxes' source, for events recorded elsewhere.
    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    /// Whether the instance's client is running here but not online yet.
    pub fn connecting(&self, id: Uuid) -> bool {
        self.live()
            .get(&id)
            .is_some_and(|l| l.session.is_some() && !l.pairing.borrow().online)
    }

    /// The live client of an instance, if one is running.
    pub fn session(&self, id: Uuid) -> Option<Arc<dyn Session>> {
        self.live().get(&id).and_then(|l| l.session.clone())
    }

    fn update(&self, id: Uuid, f: impl FnOnce(&mut Pairing)) {
        if let Some(live) = self.live().get(&id) {
            live.pairing.send_modify(f);
        }
    }

    /// Whether the instance's lease was taken over under `fence`; if so
    /// its session goes, and nothing more of it is applied here.
    async fn fenced_out(&self, id: Uuid, fence: &crate::cluster::Fence) -> bool {
        match fence.holds(&self.inner.db).await {
            Ok(true) => false,
            Ok(false) => {
                if let Some(cluster) = self.inner.cluster.get() {
                    cluster.fenced_out(id);
                }
                self.stop(id).await;
                true
            }
            Err(e) => {
                // The write that follows meets the same database, and its
                // own error is the one to report.
                tracing::warn!(error = %e, "could not check the lease's epoch");
                false
            }
        }
    }

    /// Disconnects and forgets the live session, without unlinking.
    async fn stop(&self, id: Uuid) {
        let live = self.live().remove(&id);
        if let Some(session) = live.and_then(|l| l.session) {
            session.disconnect().await;
        }
    }

    /// The live session's pairing state, starting a session if none is live.
    async fn ensure_started(&self, id: Uuid) -> Result<watch::Receiver<Pairing>, SessionError> {
        if self
            .inner
            .closing
            .load(std::sync::atomic::Ordering::Acquire)
        {
            let stopping = EngineError::Other("the gateway is stopping".into());
            return Err(SessionError::Engine(stopping));
        }
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.acquire(id).await?;
        }
        let rx = {
            let mut live = self.live();
            if let Some(existing) = live.get(&id) {
                return Ok(existing.pairing.subscribe());
            }
            let (tx, rx) = watch::channel(Pairing::default());
            live.insert(
                id,
                Live {
                    session: None,
                    pairing: tx,
                },
            );
            rx
        };
        match self.inner.engine.start(id, self.inner.sink.clone()).await {
            Ok(session) => {
                let orphan = match self.live().get_mut(&id) {
                    Some(live) => {
                        live.session = Some(session);
                        None
                    }
                    None => Some(session),
                };
                // Logged out or stopped while starting: do not leak it.
                if let Some(session) = orphan {
                    session.disconnect().await;
                }
                Ok(rx)
            }
            Err(e) => {
                self.live().remove(&id);
                Err(e.into())
            }
        }
    }

    async fn pairable(&self, id: Uuid) -> Result<Instance, SessionError> {
        let instance = store::get(&self.inner.db, id).await?;
        match instance.status {
            Status::LoggedOut => Err(SessionError::LoggedOut(id)),
            Status::Online => Err(SessionError::AlreadyOnline(id)),
            _ => Ok(instance),
        }
    }

    /// Starts pairing (or resumes a stored session) and waits for the first
    /// QR code or for the instance to come online.
    pub async fn login(&self, id: Uuid) -> Result<(Instance, Pairing), SessionError> {
        self.pairable(id).await?;
        let mut rx = self.ensure_started(id).await?;
        let waited = tokio::time::timeout(
            self.inner.answer_timeout,
            rx.wait_for(|p| p.qr.is_some() || p.online || p.failure.is_some()),
        )
        .await
        .map(|r| r.map(|p| p.clone()));
        let pairing = match waited {
            Ok(Ok(p)) => p,
            // The session went away while we waited (logout, exhaustion).
            Ok(Err(_)) => rx.borrow().clone(),
            Err(_) => return Err(SessionError::Timeout(self.inner.answer_timeout.as_secs())),
        };
        if let Some(failure) = &pairing.failure {
            return Err(SessionError::PairingFailed(failure.clone()));
        }
        Ok((store::get(&self.inner.db, id).await?, pairing))
    }

    /// The QR code on show for an instance that is pairing.
    pub async fn qr(&self, id: Uuid) -> Result<Qr, SessionError> {
        self.pairable(id).await?;
        self.live()
            .get(&id)
            .and_then(|l| l.pairing.borrow().qr.clone())
            .ok_or(SessionError::NoQr(id))
    }

    /// Asks WhatsApp for a linking code for `phone_number` (E.164 digits).
    pub async fn pair_code(&self, id: Uuid, phone_number: &str) -> Result<String, SessionError> {
        self.pairable(id).await?;
        self.ensure_started(id).await?;
        let session = self
            .live()
            .get(&id)
            .and_then(|l| l.session.clone())
            .ok_or(SessionError::Timeout(0))?;
        let code = tokio::time::timeout(self.inner.answer_timeout, session.pair_code(phone_number))
            .await
            .map_err(|_| SessionError::Timeout(self.inner.answer_timeout.as_secs()))??;
        Ok(code)
    }

    /// Unlinks the device, forgets the session, wipes its keys and marks the
    /// instance `logged_out` (terminal).
    pub async fn logout(&self, id: Uuid) -> Result<Instance, SessionError> {
        let instance = store::get(&self.inner.db, id).await?;
        match instance.status {
            Status::LoggedOut => return Err(SessionError::LoggedOut(id)),
            Status::Created | Status::QrPending => return Err(SessionError::NotPaired(id)),
            Status::Online | Status::Disconnected => {}
        }
        let live = self.live().remove(&id);
        // The state changes first, so the client's own logged-out event that
        // follows finds nothing left to do and the API's reason is the one
        // recorded.
        let reason = EngineEvent::LoggedOut {
            reason: "logged out through the API".into(),
        };
        // An API call, not the session: the call reached the owner.
        lifecycle::apply(&self.inner.db, &self.inner.webhooks, id, &reason, None).await?;
        if let Some(session) = live.and_then(|l| l.session) {
            session.logout().await;
        }
        self.inner.engine.wipe(id).await?;
        Ok(store::get(&self.inner.db, id).await?)
    }

    /// Before serving: no instance is connected yet, whatever the rows say
    /// after a crash, and a logout a crash interrupted is finished.
    /// On a cluster node, only instances no live lease covers: the others
    /// are connected on other nodes.
    pub async fn settle_after_start(&self) -> Result<(), SessionError> {
        if let Some(cluster) = self.inner.cluster.get() {
            lifecycle::reset_unleased_connections(&self.inner.db, cluster.node_id()).await?;
        } else {
            lifecycle::reset_connections(&self.inner.db).await?;
        }
        for id in self.ids_in(Status::LoggedOut).await? {
            self.inner.engine.wipe(id).await?;
        }
        Ok(())
    }

    pub fn resume_progress(&self) -> &ResumeProgress {
        &self.inner.progress
    }

    pub(super) async fn ids_in(&self, status: Status) -> Result<Vec<Uuid>, DbErr> {
        Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Status.eq(status))
            .into_tuple::<Uuid>()
            .all(&self.inner.db)
            .await
    }

    /// Disconnects every live session without unlinking it, so each resumes
    /// on the next start.
    pub async fn shutdown(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        let sessions: Vec<_> = self.live().drain().filter_map(|(_, l)| l.session).collect();
        for session in sessions {
            session.disconnect().await;
        }
        self.drain().await;
    }

    /// Returns once every engine event queued so far has been applied, so
    /// nothing is still on its way to the database when the pool closes;
    /// later events are not applied.
    async fn drain(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.drain.send(tx).is_ok() {
            let _ = rx.await;
        }
    }
}
