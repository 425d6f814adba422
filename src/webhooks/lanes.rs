//! The dispatcher's in-memory side: per webhook, its requests in flight,
//! its adaptive limit and a bounded queue of deliveries (claimed in the
//! database under this dispatcher's lease) waiting for a free request.
//!
//! A request holds its webhook's share only for the HTTP exchange; the
//! dispatcher-wide budget (`max_in_flight`) also covers handing the result
//! to the writer, so results never pile up faster than they are recorded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;
use uuid::Uuid;

use super::adaptive::{Limit, Signal};
use super::attempt::{AttemptResult, Job};
use crate::config::WebhookSettings;

pub struct Lanes {
    total: usize,
    initial: usize,
    ceiling: usize,
    queue_cap: usize,
    slow: Duration,
    retry_after_max: Duration,
    /// A queued delivery with less lease left than this is given back
    /// rather than started: its attempt could outlive the claim.
    min_lease: chrono::Duration,
    inner: Mutex<Inner>,
    /// Told whenever room frees (a request ends, a result is handed on).
    kick: Notify,
}

#[derive(Default)]
struct Inner {
    /// Attempts running or handing their result to the writer.
    busy: usize,
    lanes: HashMap<Uuid, Lane>,
    /// Lanes with queued deliveries.
    waiting: HashSet<Uuid>,
    /// Deliveries taken out of a queue unstarted, to give back.
    evicted: Vec<Uuid>,
}

struct Lane {
    limit: Limit,
    /// Hand-offs promised by transactions not yet committed or arrived.
    reserved: usize,
    running: usize,
    queue: VecDeque<Job>,
    /// Due rows of this webhook were left pending (a hand-off found the
    /// queue full, or a claim filled its room): fresh ones wait their turn
    /// behind them, through the claim.
    backlog: bool,
}

impl Lane {
    fn held(&self) -> usize {
        self.reserved + self.running + self.queue.len()
    }
}

/// Free room for a claim: per webhook, and the default for webhooks this
/// dispatcher has no lane for.
#[derive(Debug, Default)]
pub struct Rooms {
    pub total: usize,
    /// How many due rows, in order, the claim looks at.
    pub candidates: usize,
    pub default: usize,
    /// Known webhooks and their room; a webhook with none (full or paused)
    /// is left out of the claim altogether.
    pub known: Vec<(Uuid, usize)>,
}

impl Lanes {
    pub fn new(s: &WebhookSettings) -> Arc<Self> {
        // Starting a request with less lease than its timeout (plus a
        // margin for recording it) risks a second dispatcher reclaiming it
        // mid-flight. The settings make the lease exceed the timeout.
        let margin = s.lease().saturating_sub(s.request_timeout()) / 2;
        let min_lease = s.request_timeout() + margin.min(Duration::from_secs(1));
        Arc::new(Self {
            total: s.max_in_flight,
            initial: s.initial_in_flight_per_webhook,
            ceiling: s.max_in_flight_per_webhook,
            queue_cap: s.queue_per_webhook,
            slow: s.slow_response(),
            retry_after_max: s.retry_after_max(),
            min_lease: chrono::Duration::from_std(min_lease)
                .unwrap_or(chrono::Duration::seconds(60)),
            inner: Mutex::default(),
            kick: Notify::new(),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_lane(&self) -> Lane {
        Lane {
            limit: Limit::new(self.initial, self.ceiling),
            reserved: 0,
            running: 0,
            queue: VecDeque::new(),
            backlog: false,
        }
    }

    pub(crate) fn kicked(&self) -> tokio::sync::futures::Notified<'_> {
        self.kick.notified()
    }

    /// The current limit of `webhook_id`'s requests in flight.
    pub fn limit_of(&self, webhook_id: Uuid) -> usize {
        self.inner()
            .lanes
            .get(&webhook_id)
            .map_or(Limit::new(self.initial, self.ceiling).value(), |l| {
                l.limit.value()
            })
    }

    /// Room for one fresh delivery of `webhook_id`, for a transaction that
    /// records an event: a running request or a place in the queue.
    pub fn reserve(self: &Arc<Self>, webhook_id: Uuid) -> Option<Ticket> {
        let now = Instant::now();
        let mut inner = self.inner();
        let lane = inner
            .lanes
            .entry(webhook_id)
            .or_insert_with(|| self.new_lane());
        if lane.limit.paused(now) || lane.backlog {
            return None;
        }
        if lane.held() >= lane.limit.value() + self.queue_cap {
            lane.backlog = true;
            return None;
        }
        lane.reserved += 1;
        Some(Ticket {
            lanes: Some(self.clone()),
            webhook_id,
        })
    }

    /// A hand-off arrived after its transaction committed.
    pub fn handed(&self, job: Job, mut ticket: Ticket) {
        ticket.lanes = None;
        let mut inner = self.inner();
        let id = job.webhook_id;
        let lane = inner.lanes.entry(id).or_insert_with(|| self.new_lane());
        lane.reserved = lane.reserved.saturating_sub(1);
        lane.queue.push_back(job);
        inner.waiting.insert(id);
    }

    /// Claimed deliveries, to start as room allows.
    pub fn claimed(&self, jobs: Vec<Job>) {
        let mut inner = self.inner();
        for job in jobs {
            let id = job.webhook_id;
            let lane = inner.lanes.entry(id).or_insert_with(|| self.new_lane());
            lane.queue.push_back(job);
            inner.waiting.insert(id);
        }
    }

    /// After a claim given `rooms`: which webhooks filled their room (due
    /// rows may remain) and which did not (none remain in reach).
    pub fn after_claim(&self, rooms: &Rooms, claimed: &HashMap<Uuid, usize>) {
        let mut inner = self.inner();
        for (id, lane) in inner.lanes.iter_mut() {
            let room = rooms
                .known
                .iter()
                .find(|(k, _)| k == id)
                .map_or(rooms.default, |(_, r)| *r);
            let got = claimed.get(id).copied().unwrap_or(0);
            if room > 0 {
                lane.backlog = got >= room;
            }
        }
    }

    /// What a claim may take now.
    pub fn rooms(&self) -> Rooms {
        let now = Instant::now();
        let inner = self.inner();
        let default = Limit::new(self.initial, self.ceiling).value();
        let known = inner
            .lanes
            .iter()
            .map(|(id, lane)| {
                let room = if lane.limit.paused(now) {
                    0
                } else {
                    lane.limit.value().saturating_sub(lane.held())
                };
                (*id, room)
            })
            .filter(|(_, room)| *room != default)
            .collect();
        Rooms {
            total: self.total.saturating_sub(inner.busy + queued(&inner)),
            candidates: 0,
            default,
            known,
        }
    }

    /// Whether a claim now would find room worth a round trip for a webhook
    /// that has due rows left behind: at least a quarter of its limit.
    pub fn backlog_has_room(&self) -> bool {
        let now = Instant::now();
        let inner = self.inner();
        inner.busy < self.total
            && inner.lanes.values().any(|lane| {
                let limit = lane.limit.value();
                lane.backlog && !lane.limit.paused(now) && lane.held() + (limit / 4).max(1) <= limit
            })
    }

    /// Whether at least a quarter of the dispatcher-wide budget is free.
    pub fn total_has_room(&self) -> bool {
        let inner = self.inner();
        inner.busy + queued(&inner) + (self.total / 4).max(1) <= self.total
    }

    /// Takes the queued deliveries that may start now, each with its
    /// running guard, and those to give back (lease too short, or their
    /// webhook paused).
    pub fn startable(self: &Arc<Self>) -> (Vec<(Job, Running)>, Vec<Uuid>) {
        let now = Instant::now();
        let lease_floor = Utc::now() + self.min_lease;
        let mut guard = self.inner();
        let inner = &mut *guard;
        let mut start = Vec::new();
        let mut give_back = std::mem::take(&mut inner.evicted);
        let waiting: Vec<Uuid> = inner.waiting.iter().copied().collect();
        for id in waiting {
            let mut busy = inner.busy;
            let Some(lane) = inner.lanes.get_mut(&id) else {
                inner.waiting.remove(&id);
                continue;
            };
            if lane.limit.paused(now) {
                give_back.extend(lane.queue.drain(..).map(|j| j.delivery_id));
            }
            while busy < self.total
                && lane.running < lane.limit.value()
                && let Some(job) = lane.queue.pop_front()
            {
                if job.lease_until < lease_floor {
                    give_back.push(job.delivery_id);
                    continue;
                }
                lane.running += 1;
                busy += 1;
                start.push((
                    job,
                    Running {
                        lanes: self.clone(),
                        webhook_id: id,
                        requesting: true,
                    },
                ));
            }
            let empty = lane.queue.is_empty();
            inner.busy = busy;
            if empty {
                inner.waiting.remove(&id);
                self.prune(inner, id, now);
            }
        }
        (start, give_back)
    }

    /// Drops a lane that holds nothing and knows nothing worth keeping.
    fn prune(&self, inner: &mut Inner, id: Uuid, now: Instant) {
        if inner
            .lanes
            .get(&id)
            .is_some_and(|l| l.held() == 0 && !l.backlog && l.limit.is_initial(self.initial, now))
        {
            inner.lanes.remove(&id);
        }
    }
}

fn queued(inner: &Inner) -> usize {
    inner
        .waiting
        .iter()
        .filter_map(|id| inner.lanes.get(id))
        .map(|l| l.queue.len())
        .sum()
}

/// A place promised to a hand-off; dropped unused (the transaction failed,
/// the dispatcher is gone), it is given back.
pub struct Ticket {
    lanes: Option<Arc<Lanes>>,
    webhook_id: Uuid,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(lanes) = self.lanes.take() {
            let mut inner = lanes.inner();
            if let Some(lane) = inner.lanes.get_mut(&self.webhook_id) {
                lane.reserved = lane.reserved.saturating_sub(1);
            }
            lanes.prune(&mut inner, self.webhook_id, Instant::now());
        }
    }
}

/// One started attempt's share of the budget: its webhook's until
/// [`Running::finished`], the dispatcher's until dropped.
pub struct Running {
    lanes: Arc<Lanes>,
    webhook_id: Uuid,
    requesting: bool,
}

impl Running {
    /// The HTTP exchange is over: the webhook's request is free, and its
    /// outcome moves the webhook's limit.
    pub fn finished(&mut self, result: &AttemptResult) {
        let lanes = &self.lanes;
        let signal = Signal::of(result, lanes.slow);
        let now = Instant::now();
        let mut guard = lanes.inner();
        let inner = &mut *guard;
        let mut paused = false;
        if let Some(lane) = inner.lanes.get_mut(&self.webhook_id) {
            let constrained =
                lane.backlog || !lane.queue.is_empty() || lane.running >= lane.limit.value();
            lane.running = lane.running.saturating_sub(1);
            let was_paused = lane.limit.paused(now);
            lane.limit
                .observe(signal, constrained, now, lanes.retry_after_max);
            paused = !was_paused && lane.limit.paused(now);
            if paused {
                let queue: Vec<Uuid> = lane.queue.drain(..).map(|j| j.delivery_id).collect();
                inner.evicted.extend(queue);
            }
        }
        self.requesting = false;
        drop(guard);
        if paused {
            tracing::info!(webhook_id = %self.webhook_id, "webhook asked to wait (Retry-After)");
        }
        lanes.kick.notify_one();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut inner = self.lanes.inner();
        inner.busy = inner.busy.saturating_sub(1);
        if self.requesting
            && let Some(lane) = inner.lanes.get_mut(&self.webhook_id)
        {
            lane.running = lane.running.saturating_sub(1);
        }
        if !inner.waiting.contains(&self.webhook_id) {
            self.lanes
                .prune(&mut inner, self.webhook_id, Instant::now());
        }
        drop(inner);
        self.lanes.kick.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn lanes(ceiling: usize, queue: usize) -> Arc<Lanes> {
        let figment = Settings::defaults_figment()
            .merge(("admin_key", "unit-test-admin-key-0123456789"))
            .merge(("webhooks.max_in_flight", 4))
            .merge(("webhooks.max_in_flight_per_webhook", ceiling))
            .merge(("webhooks.initial_in_flight_per_webhook", 2))
            .merge(("webhooks.queue_per_webhook", queue));
        let settings = Settings::from_figment(figment).expect("settings");
        Lanes::new(&settings.webhooks)
    }

    fn job(webhook_id: Uuid) -> Job {
        Job {
            delivery_id: Uuid::now_v7(),
            webhook_id,
            instance_id: Uuid::now_v7(),
            event_id: "msg_x".into(),
            event_type: "message.sent".into(),
            attempt: 1,
            url: "http://127.0.0.1/".into(),
            destination: crate::webhooks::sink::Destination::Http,
            secrets: Ok(Vec::new()),
            body: Vec::new(),
            lease_until: Utc::now() + chrono::Duration::hours(1),
            handed_off: false,
        }
    }

    #[test]
    fn hand_offs_fill_requests_then_the_queue_then_leave_rows_pending() {
        let lanes = lanes(8, 1);
        let hook = Uuid::now_v7();
        let tickets: Vec<Ticket> = (0..3).filter_map(|_| lanes.reserve(hook)).collect();
        assert_eq!(tickets.len(), 3, "two requests and one queued");
        assert!(lanes.reserve(hook).is_none(), "the queue is full");
        assert!(lanes.reserve(hook).is_none(), "and rows wait their turn");
        for t in tickets {
            lanes.handed(job(hook), t);
        }
        let (started, given_back) = lanes.startable();
        assert_eq!(started.len(), 2, "the limit holds");
        assert!(given_back.is_empty());
        let rooms = lanes.rooms();
        assert_eq!(rooms.known, vec![(hook, 0)], "a full webhook is skipped");
        assert_eq!(rooms.total, 1, "two running and one queued of four");
        drop(started);
        let (started, _) = lanes.startable();
        assert_eq!(started.len(), 1);
    }

    #[test]
    fn fast_answers_raise_the_limit_and_a_dropped_ticket_comes_back() {
        let lanes = lanes(3, 4);
        let hook = Uuid::now_v7();
        assert_eq!(lanes.limit_of(hook), 2);
        lanes.claimed((0..4).map(|_| job(hook)).collect());
        let (mut started, _) = lanes.startable();
        assert_eq!(started.len(), 2);
        let (job, running) = started.remove(0);
        let mut running = running;
        running.finished(&AttemptResult {
            job,
            started_at: Utc::now(),
            duration: Duration::from_millis(1),
            status_code: Some(204),
            response_body: None,
            error_kind: None,
            error: None,
            retry_after: None,
            verdict: super::super::attempt::Verdict::Succeeded,
        });
        assert_eq!(lanes.limit_of(hook), 3, "deliveries were waiting");
        let (more, _) = lanes.startable();
        assert_eq!(more.len(), 2, "one freed request and one more allowed");
        drop((running, started, more));
        let other = Uuid::now_v7();
        let ticket = lanes.reserve(other).expect("room");
        drop(ticket);
        assert!(
            !lanes.inner().lanes.contains_key(&other),
            "an idle lane is forgotten"
        );
    }
}
