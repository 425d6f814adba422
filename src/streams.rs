//! Live event streams: the post-commit broadcast of which instances have new
//! events, and the feed that turns the outbox into "replay, then live".
//!
//! The broadcast carries only instance ids; every event a stream sends is
//! read from the outbox by the instance's commit-ordered position, after the
//! last position it sent. So the seam between replay and live can neither
//! lose nor double an event: the subscription starts before the replay
//! reads, and a wake-up for events already replayed finds nothing new.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entity::webhook_events::{self, Model as Event};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Events read per query while catching up.
const PAGE: u64 = 500;
/// Wake-ups a slow stream may fall behind by before it re-reads everything.
const BACKLOG: usize = 4096;

/// Recent events kept per instance, shared by every stream of it.
const TAIL: usize = 1024;

/// Tells open streams which instances have newly committed events, and
/// keeps each instance's latest events so that many streams of one
/// instance cost one database read per wake-up, not one each. Cheap to
/// clone; announcing never blocks.
#[derive(Clone)]
pub struct Broadcaster {
    tx: broadcast::Sender<Uuid>,
    tails: Arc<Mutex<HashMap<Uuid, Arc<Tail>>>>,
}

/// One instance's latest events.
#[derive(Default)]
struct Tail {
    /// Bumped after every commit that recorded events for the instance.
    commits: AtomicU64,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// `commits` as it was before the last read: anything committed since
    /// bumped it, so an equal value means nothing new.
    read_at: Option<u64>,
    /// Consecutive positions, oldest first.
    events: VecDeque<Arc<Event>>,
}

impl Default for Broadcaster {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            tails: Arc::default(),
        }
    }
}

impl Broadcaster {
    /// Called after a transaction that recorded events for `instances`
    /// committed.
    pub fn committed(&self, instances: &[Uuid]) {
        let mut told = HashSet::new();
        for id in instances {
            if told.insert(*id) {
                self.tail(*id).commits.fetch_add(1, Ordering::SeqCst);
                // No stream listening is not an error.
                let _ = self.tx.send(*id);
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }

    fn tail(&self, id: Uuid) -> Arc<Tail> {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        // Tails of instances nobody streams any more are dropped now and then.
        if tails.len() > 4 * TAIL {
            tails.retain(|_, t| Arc::strong_count(t) > 1);
        }
        tails.entry(id).or_default().clone()
    }

    /// The instance's events after `after`, from the shared tail when it
    /// reaches back that far (reading only what is new, once for all
    /// streams); `None` when the caller must read the database itself.
    async fn after(
        &self,
        db: &DatabaseConnection,
        id: Uuid,
        after: i64,
    ) -> Result<Option<Vec<Arc<Event>>>, DbErr> {
        let tail = self.tail(id);
        let mut cache = tail.cache.lock().await;
        let commits = tail.commits.load(Ordering::SeqCst);
        if cache.read_at != Some(commits) {
            let from = cache.events.back().map_or(after, |e| e.position);
            let page = webhook_events::Entity::find()
                .filter(webhook_events::Column::InstanceId.eq(id))
                .filter(webhook_events::Column::Position.gt(from))
                .order_by_asc(webhook_events::Column::Position)
                .limit(PAGE)
                .all(db)
                .await?;
            // A full page may have more behind it: read again next time.
            cache.read_at = (page.len() < PAGE as usize).then_some(commits);
            cache.events.extend(page.into_iter().map(Arc::new));
            while cache.events.len() > TAIL {
                cache.events.pop_front();
            }
        }
        let first = cache.events.front().map(|e| e.position);
        if first.is_some_and(|first| first > after + 1) {
            return Ok(None);
        }
        Ok(Some(
            cache
                .events
                .iter()
                .filter(|e| e.position > after)
                .cloned()
                .collect(),
        ))
    }
}

/// Which events a stream carries.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The instances it may read; `None` is every instance.
    pub instances: Option<HashSet<Uuid>>,
    /// Event types it wants; `None` is every type.
    pub types: Option<HashSet<String>>,
}

impl Selection {
    fn wants_instance(&self, id: Uuid) -> bool {
        self.instances.as_ref().is_none_or(|set| set.contains(&id))
    }

    fn wants(&self, event: &Event) -> bool {
        self.types
            .as_ref()
            .is_none_or(|set| set.contains(&event.event_type))
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Only events committed from now on.
    Now,
    /// Events after this position (one instance's stream).
    Position(i64),
    /// Events after this event (`msg_…`): on one instance, by position;
    /// across instances, events with a later id (ids are time-ordered).
    EventId(String),
}

/// What decides, now and then, whether the stream may go on (a revoked key
/// ends it).
pub type StillAllowed =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static>;

/// The running feed of one stream.
struct Feed {
    db: DatabaseConnection,
    broadcaster: Broadcaster,
    selection: Selection,
    out: mpsc::Sender<Event>,
    /// The last position sent (or skipped by the type filter) per instance.
    sent: HashMap<Uuid, i64>,
}

/// Starts a stream's feed; its events arrive on the returned receiver,
/// which ends when the stream is refused further (`still_allowed`), the
/// database fails, or the server stops. Dropping the receiver stops it.
pub fn open(
    db: DatabaseConnection,
    broadcaster: &Broadcaster,
    selection: Selection,
    start: Start,
    recheck: Duration,
    still_allowed: StillAllowed,
) -> mpsc::Receiver<Event> {
    let (out, rx) = mpsc::channel(64);
    // Subscribed before anything is read: whatever commits from here on
    // wakes the feed, so nothing falls between the replay and live.
    let wakes = broadcaster.subscribe();
    let feed = Feed {
        db,
        broadcaster: broadcaster.clone(),
        selection,
        out,
        sent: HashMap::new(),
    };
    tokio::spawn(async move {
        crate::metrics::streams(1.0);
        if let Err(e) = feed.run(wakes, start, recheck, still_allowed).await {
            tracing::warn!(error = %e, "an event stream stopped");
        }
        crate::metrics::streams(-1.0);
    });
    rx
}

/// The client went away.
struct Gone;

enum Stop {
    Gone,
    Db(DbErr),
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Stop::Db(e)
    }
}

impl From<Gone> for Stop {
    fn from(_: Gone) -> Self {
        Stop::Gone
    }
}

impl Feed {
    async fn run(
        mut self,
        mut wakes: broadcast::Receiver<Uuid>,
        start: Start,
        recheck: Duration,
        still_allowed: StillAllowed,
    ) -> Result<(), DbErr> {
        match self.serve(&mut wakes, start, recheck, still_allowed).await {
            Ok(()) | Err(Stop::Gone) => Ok(()),
            Err(Stop::Db(e)) => Err(e),
        }
    }

    async fn serve(
        &mut self,
        wakes: &mut broadcast::Receiver<Uuid>,
        start: Start,
        recheck: Duration,
        still_allowed: StillAllowed,
    ) -> Result<(), Stop> {
        let heads = self.heads().await?;
        self.replay(start, &heads).await?;
        for (id, head) in heads {
            let sent = self.sent.entry(id).or_insert(head);
            *sent = (*sent).max(head);
        }
        let mut tick = tokio::time::interval(recheck);
        tick.tick().await;
        loop {
            tokio::select! {
                () = self.out.closed() => return Ok(()),
                wake = wakes.recv() => match wake {
                    Ok(id) if self.selection.wants_instance(id) => self.catch_up(id).await?,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.sweep().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tick.tick() => {
                    if !still_allowed().await {
                        return Ok(());
                    }
                    // Events recorded without a broadcast still arrive.
                    self.sweep().await?;
                }
            }
        }
    }

    /// The last position of every selected instance that has events.
    async fn heads(&self) -> Result<HashMap<Uuid, i64>, DbErr> {
        let mut query = webhook_events::Entity::find()
            .select_only()
            .column(webhook_events::Column::InstanceId)
            .column_as(webhook_events::Column::Position.max(), "head")
            .group_by(webhook_events::Column::InstanceId);
        if let Some(ids) = &self.selection.instances {
            query = query.filter(webhook_events::Column::InstanceId.is_in(ids.iter().copied()));
        }
        let rows: Vec<(Uuid, Option<i64>)> = query.into_tuple().all(&self.db).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, head)| Some((id, head?)))
            .collect())
    }

    /// Sends what was committed before the stream opened, up to `heads`.
    async fn replay(&mut self, start: Start, heads: &HashMap<Uuid, i64>) -> Result<(), Stop> {
        match start {
            Start::Now => Ok(()),
            Start::Position(after) => self.replay_after(after, heads).await,
            Start::EventId(after) => {
                // On one instance an event id stands for its position.
                let single = self.selection.instances.as_ref().filter(|s| s.len() == 1);
                if let Some(id) = single.and_then(|s| s.iter().next().copied())
                    && let Some(event) = webhook_events::Entity::find_by_id(after.clone())
                        .filter(webhook_events::Column::InstanceId.eq(id))
                        .one(&self.db)
                        .await?
                {
                    return self.replay_after(event.position, heads).await;
                }
                self.replay_after_id(&after, heads).await
            }
        }
    }

    async fn replay_after(&mut self, after: i64, heads: &HashMap<Uuid, i64>) -> Result<(), Stop> {
        for id in self.selection.instances.iter().flatten() {
            self.sent.insert(*id, after);
        }
        for (id, head) in heads {
            self.sent.insert(*id, after);
            self.read(*id, Some(*head)).await?;
        }
        Ok(())
    }

    async fn replay_after_id(
        &mut self,
        after: &str,
        heads: &HashMap<Uuid, i64>,
    ) -> Result<(), Stop> {
        let mut last = after.to_owned();
        loop {
            let mut query = webhook_events::Entity::find()
                .filter(webhook_events::Column::Id.gt(last.clone()))
                .order_by_asc(webhook_events::Column::Id)
                .limit(PAGE);
            if let Some(ids) = &self.selection.instances {
                query = query.filter(webhook_events::Column::InstanceId.is_in(ids.iter().copied()));
            }
            let page = query.all(&self.db).await?;
            let Some(tail) = page.last() else {
                return Ok(());
            };
            last = tail.id.clone();
            let full = page.len() as u64 == PAGE;
            for event in page {
                // Later ones arrive live, by position.
                if heads
                    .get(&event.instance_id)
                    .is_some_and(|h| event.position <= *h)
                {
                    self.emit(event).await?;
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends the instance's events after the last one sent.
    async fn catch_up(&mut self, id: Uuid) -> Result<(), Stop> {
        loop {
            let after = self.sent.get(&id).copied().unwrap_or(0);
            let Some(events) = self.broadcaster.after(&self.db, id, after).await? else {
                return self.read(id, None).await;
            };
            if events.is_empty() {
                return Ok(());
            }
            for event in events {
                self.sent.insert(id, event.position);
                if self.selection.wants(&event) {
                    self.out
                        .send(Event::clone(&event))
                        .await
                        .map_err(|_| Gone)?;
                }
            }
        }
    }

    async fn read(&mut self, id: Uuid, up_to: Option<i64>) -> Result<(), Stop> {
        loop {
            let after = self.sent.get(&id).copied().unwrap_or(0);
            let mut query = webhook_events::Entity::find()
                .filter(webhook_events::Column::InstanceId.eq(id))
                .filter(webhook_events::Column::Position.gt(after))
                .order_by_asc(webhook_events::Column::Position)
                .limit(PAGE);
            if let Some(head) = up_to {
                query = query.filter(webhook_events::Column::Position.lte(head));
            }
            let page = query.all(&self.db).await?;
            let full = page.len() as u64 == PAGE;
            for event in page {
                self.sent.insert(id, event.position);
                if self.selection.wants(&event) {
                    self.out.send(event).await.map_err(|_| Gone)?;
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn emit(&mut self, event: Event) -> Result<(), Stop> {
        let at = self.sent.entry(event.instance_id).or_insert(0);
        *at = (*at).max(event.position);
        if self.selection.wants(&event) {
            self.out.send(event).await.map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Catches up every instance whose head moved (after a missed wake-up).
    async fn sweep(&mut self) -> Result<(), Stop> {
        for (id, head) in self.heads().await? {
            if self.sent.get(&id).is_none_or(|sent| *sent < head) {
                self.catch_up(id).await?;
            }
        }
        Ok(())
    }
}
