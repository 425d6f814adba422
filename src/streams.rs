//! Live event streams: the post-commit broadcast of which instances have new
//! events, and the feed that turns the outbox into "replay, then live".
//!
//! The broadcast carries only instance ids; every event a stream sends is
//! read from the outbox by its number after the last number it sent: the
//! instance's position on an instance's stream, the global sequence on the
//! all-instances stream. Both are given by the sequencer and become visible
//! in order (see [`crate::webhooks::sequencer`]), so neither the seam
//! between replay and live nor a resume can lose or double an event: the
//! subscription starts before the replay reads, and a wake-up for events
//! already sent finds nothing new.

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

use crate::webhooks::Webhooks;

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
    /// Per instance, and (`None`) one of every instance's events.
    tails: Arc<Mutex<HashMap<Option<Uuid>, Arc<Tail>>>>,
}

/// One instance's latest events, or every instance's.
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
    /// Consecutive positions (sequences, in the tail of every instance),
    /// oldest first.
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
    /// Called after the sequencer numbered events of `instances`.
    pub fn committed(&self, instances: &[Uuid]) {
        let mut told = Vec::new();
        for id in instances {
            if !told.contains(id) {
                told.push(*id);
                self.tail(Some(*id)).commits.fetch_add(1, Ordering::SeqCst);
            }
        }
        if told.is_empty() {
            return;
        }
        self.tail(None).commits.fetch_add(1, Ordering::SeqCst);
        for id in told {
            // No stream listening is not an error.
            let _ = self.tx.send(id);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.tx.subscribe()
    }

    fn tail(&self, id: Option<Uuid>) -> Arc<Tail> {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        // Tails of instances nobody streams any more are dropped now and then.
        if tails.len() > 4 * TAIL {
            tails.retain(|_, t| Arc::strong_count(t) > 1);
        }
        tails.entry(id).or_default().clone()
    }

    /// The events after `after` (a position of instance `key`, or a
    /// sequence when `key` is `None`), from the shared tail when it reaches
    /// back that far (reading only what is new, once for all streams);
    /// `None` when the caller must read the database itself.
    async fn after(
        &self,
        db: &DatabaseConnection,
        key: Option<Uuid>,
        after: i64,
    ) -> Result<Option<Vec<Arc<Event>>>, DbErr> {
        let number = |e: &Event| {
            if key.is_some() {
                e.position
            } else {
                e.sequence
            }
        };
        let tail = self.tail(key);
        let mut cache = tail.cache.lock().await;
        let commits = tail.commits.load(Ordering::SeqCst);
        if cache.read_at != Some(commits) {
            let from = cache.events.back().map_or(after, |e| number(e));
            let page = match key {
                Some(id) => webhook_events::Entity::find()
                    .filter(webhook_events::Column::InstanceId.eq(id))
                    .filter(webhook_events::Column::Position.gt(from))
                    .order_by_asc(webhook_events::Column::Position),
                None => webhook_events::Entity::find()
                    .filter(webhook_events::Column::Sequence.gt(from))
                    .order_by_asc(webhook_events::Column::Sequence),
            }
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
        let first = cache.events.front().map(|e| number(e));
        if first.is_some_and(|first| first > after + 1) {
            return Ok(None);
        }
        Ok(Some(
            cache
                .events
                .iter()
                .filter(|e| number(e) > after)
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
    /// Only events sequenced from now on.
    Now,
    /// Events after this number: a position on an instance's stream, a
    /// sequence on the all-instances stream.
    After(i64),
    /// Events after this event (`msg_…`), by its number.
    EventId(String),
}

/// What decides, now and then, whether the stream may go on (a revoked key
/// ends it).
pub type StillAllowed =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static>;

/// The running feed of one stream.
struct Feed {
    db: DatabaseConnection,
    webhooks: Webhooks,
    /// `Some`: one instance's stream, by position; `None`: every selected
    /// instance's, by sequence.
    key: Option<Uuid>,
    selection: Selection,
    out: mpsc::Sender<Event>,
    /// The number of the last event sent (or skipped by a filter).
    sent: i64,
}

/// Starts a stream's feed: one instance's events (`instance`) or, when
/// `None`, those of every instance `selection` names. Where it starts is
/// settled before this returns, so `Now` means after everything committed
/// before the stream was opened. Its events arrive on the returned
/// receiver, which ends when the stream is refused further
/// (`still_allowed`), the database fails, or the server stops. Dropping the
/// receiver stops it.
pub async fn open(
    db: DatabaseConnection,
    webhooks: &Webhooks,
    instance: Option<Uuid>,
    selection: Selection,
    start: Start,
    recheck: Duration,
    still_allowed: StillAllowed,
) -> Result<mpsc::Receiver<Event>, DbErr> {
    let (out, rx) = mpsc::channel(64);
    // Subscribed before anything is read: whatever is sequenced from here
    // on wakes the feed, so nothing falls between the replay and live.
    let wakes = webhooks.streams.subscribe();
    let mut feed = Feed {
        db,
        webhooks: webhooks.clone(),
        key: instance,
        selection,
        out,
        sent: 0,
    };
    feed.sent = feed.start_at(start).await?;
    tokio::spawn(async move {
        crate::metrics::streams(1.0);
        if let Err(e) = feed.run(wakes, recheck, still_allowed).await {
            tracing::warn!(error = %e, "an event stream stopped");
        }
        crate::metrics::streams(-1.0);
    });
    Ok(rx)
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
        recheck: Duration,
        still_allowed: StillAllowed,
    ) -> Result<(), DbErr> {
        match self.serve(&mut wakes, recheck, still_allowed).await {
            Ok(()) | Err(Stop::Gone) => Ok(()),
            Err(Stop::Db(e)) => Err(e),
        }
    }

    /// Replay, then live: both read by number after the last one sent, and
    /// numbers become visible in order, so the seam needs no care.
    async fn serve(
        &mut self,
        wakes: &mut broadcast::Receiver<Uuid>,
        recheck: Duration,
        still_allowed: StillAllowed,
    ) -> Result<(), Stop> {
        self.read().await?;
        let mut tick = tokio::time::interval(recheck);
        tick.tick().await;
        loop {
            tokio::select! {
                () = self.out.closed() => return Ok(()),
                wake = wakes.recv() => match wake {
                    Ok(id) if self.selection.wants_instance(id) => self.catch_up().await?,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.read().await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tick.tick() => {
                    if !still_allowed().await {
                        return Ok(());
                    }
                    // Events sequenced by another process arrive too.
                    self.read().await?;
                }
            }
        }
    }

    fn number(&self, event: &Event) -> i64 {
        if self.key.is_some() {
            event.position
        } else {
            event.sequence
        }
    }

    /// The number the stream starts after.
    async fn start_at(&self, start: Start) -> Result<i64, DbErr> {
        // Whatever committed before the stream opened is numbered first,
        // so `Now` starts after it and an event id stands for its number.
        crate::webhooks::sequencer::sequence_now(&self.db, &self.webhooks).await?;
        let id = match start {
            Start::Now => return self.head().await,
            Start::After(n) => return Ok(n),
            Start::EventId(id) => id,
        };
        if let Some(event) =
            crate::webhooks::sequencer::numbered(&self.db, &self.webhooks, &id).await?
            && self.key.is_none_or(|k| k == event.instance_id)
        {
            return Ok(self.number(&event));
        }
        // An event no longer stored (purged) stands just before the first
        // later one by id: the best that can still be done.
        let mut next = webhook_events::Entity::find()
            .filter(webhook_events::Column::Id.gt(id))
            .filter(webhook_events::Column::Sequence.gt(0))
            .order_by_asc(webhook_events::Column::Id);
        if let Some(k) = self.key {
            next = next.filter(webhook_events::Column::InstanceId.eq(k));
        }
        match next.one(&self.db).await? {
            Some(event) => Ok((self.number(&event) - 1).max(0)),
            None => self.head().await,
        }
    }

    /// The number of the last sequenced event the stream covers.
    async fn head(&self) -> Result<i64, DbErr> {
        let query = webhook_events::Entity::find().select_only();
        let query = match self.key {
            Some(k) => query
                .column_as(webhook_events::Column::Position.max(), "head")
                .filter(webhook_events::Column::InstanceId.eq(k)),
            None => query.column_as(webhook_events::Column::Sequence.max(), "head"),
        };
        let head: Option<Option<i64>> = query.into_tuple().one(&self.db).await?;
        Ok(head.flatten().unwrap_or(0))
    }

    /// Sends what is new, from the shared tail when it reaches back far
    /// enough.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let Some(events) = self
                .webhooks
                .streams
                .after(&self.db, self.key, self.sent)
                .await?
            else {
                return self.read().await;
            };
            if events.is_empty() {
                return Ok(());
            }
            for event in events {
                self.sent = self.number(&event);
                if self.selection.wants_instance(event.instance_id) && self.selection.wants(&event)
                {
                    self.out
                        .send(Event::clone(&event))
                        .await
                        .map_err(|_| Gone)?;
                }
            }
        }
    }

    /// Sends what is new, read from the database.
    async fn read(&mut self) -> Result<(), Stop> {
        loop {
            let query = webhook_events::Entity::find();
            let query = match self.key {
                Some(k) => query
                    .filter(webhook_events::Column::InstanceId.eq(k))
                    .filter(webhook_events::Column::Position.gt(self.sent))
                    .order_by_asc(webhook_events::Column::Position),
                None => {
                    let query = query
                        .filter(webhook_events::Column::Sequence.gt(self.sent))
                        .order_by_asc(webhook_events::Column::Sequence);
                    match &self.selection.instances {
                        Some(ids) => query
                            .filter(webhook_events::Column::InstanceId.is_in(ids.iter().copied())),
                        None => query,
                    }
                }
            };
            let page = query.limit(PAGE).all(&self.db).await?;
            let full = page.len() as u64 == PAGE;
            for event in page {
                self.sent = self.number(&event);
                if self.selection.wants(&event) {
                    self.out.send(event).await.map_err(|_| Gone)?;
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}
