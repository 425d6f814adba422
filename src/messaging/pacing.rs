//! Send pacing: one queue per instance, so a burst of API calls does not
//! look like a bot to WhatsApp. A send waits for its instance's previous
//! send to finish plus a minimum interval with jitter; an idle instance
//! sends at once. Past `max_queue` waiting sends, callers are refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacingSettings {
    pub min_interval_ms: u64,
    pub jitter_ms: u64,
    pub max_queue: usize,
    pub typing: bool,
    pub typing_ms_per_char: u64,
    pub typing_max_ms: u64,
}

impl Default for PacingSettings {
    fn default() -> Self {
        Self {
            min_interval_ms: 0,
            jitter_ms: 0,
            max_queue: 100,
            typing: false,
            typing_ms_per_char: 0,
            typing_max_ms: 0,
        }
    }
}

impl PacingSettings {
    /// How long to show "typing…" before a text of `chars` characters.
    pub fn typing_for(&self, chars: usize) -> Option<Duration> {
        if !self.typing {
            return None;
        }
        let ms = (chars as u64)
            .saturating_mul(self.typing_ms_per_char)
            .min(self.typing_max_ms);
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{waiting} sends are already waiting on this instance")]
pub struct QueueFull {
    pub waiting: usize,
    /// A fair guess of when a place frees up.
    pub retry_after: Duration,
}

struct Lane {
    waiting: AtomicUsize,
    /// When the next send may start; `None` until the first send.
    next: Arc<AsyncMutex<Option<Instant>>>,
}

/// The per-instance queues. Cheap to clone.
#[derive(Clone)]
pub struct Pacer {
    settings: Arc<PacingSettings>,
    lanes: Arc<Mutex<HashMap<Uuid, Arc<Lane>>>>,
}

/// The right to send now. Dropping it (after the send) starts the interval.
pub struct Turn {
    next: OwnedMutexGuard<Option<Instant>>,
    gap: Duration,
}

impl Drop for Turn {
    fn drop(&mut self) {
        *self.next = Some(Instant::now() + self.gap);
    }
}

/// Counts a caller as waiting until it holds the lane or gives up.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pacer {
    pub fn new(settings: PacingSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            lanes: Arc::default(),
        }
    }

    pub fn settings(&self) -> &PacingSettings {
        &self.settings
    }

    fn lane(&self, instance: Uuid) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .entry(instance)
            .or_insert_with(|| {
                Arc::new(Lane {
                    waiting: AtomicUsize::new(0),
                    next: Arc::default(),
                })
            })
            .clone()
    }

    fn gap(&self) -> Duration {
        let jitter = self.settings.jitter_ms as f64 * crate::webhooks::retry::unit_random();
        Duration::from_millis(self.settings.min_interval_ms) + Duration::from_secs_f64(jitter / 1e3)
    }

    /// Waits for `instance`'s turn (first come, first served).
    pub async fn turn(&self, instance: Uuid) -> Result<Turn, QueueFull> {
        let lane = self.lane(instance);
        // A free lane is taken at once; tokio's mutex hands a released lock
        // to the longest waiter, so this never jumps the queue.
        let next = match lane.next.clone().try_lock_owned() {
            Ok(next) => next,
            Err(_) => {
                let before = lane.waiting.fetch_add(1, Ordering::AcqRel);
                let waiting = Waiting(&lane.waiting);
                if before >= self.settings.max_queue {
                    let per_send = Duration::from_millis(
                        self.settings.min_interval_ms + self.settings.jitter_ms / 2,
                    );
                    return Err(QueueFull {
                        waiting: before,
                        retry_after: per_send.saturating_mul(before as u32 + 1),
                    });
                }
                let next = lane.next.clone().lock_owned().await;
                drop(waiting);
                next
            }
        };
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        Ok(Turn {
            next,
            gap: self.gap(),
        })
    }

    /// Forgets an instance's lane (after it is deleted).
    pub fn forget(&self, instance: Uuid) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.remove(&instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(interval_ms: u64, max_queue: usize) -> Pacer {
        Pacer::new(PacingSettings {
            min_interval_ms: interval_ms,
            jitter_ms: 0,
            max_queue,
            ..PacingSettings::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_instance_sends_at_once_and_the_next_waits_the_interval() {
        let pacer = pacer(2_000, 10);
        let id = Uuid::new_v4();
        let start = Instant::now();
        drop(pacer.turn(id).await.unwrap());
        assert_eq!(Instant::now(), start, "the first send waited");
        let sent_at = Instant::now();
        drop(pacer.turn(id).await.unwrap());
        assert!(Instant::now() - sent_at >= Duration::from_millis(2_000));
        // Another instance has its own lane.
        let other_at = Instant::now();
        drop(pacer.turn(Uuid::new_v4()).await.unwrap());
        assert_eq!(Instant::now(), other_at);
        // After a long idle spell there is no wait either.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let idle_at = Instant::now();
        drop(pacer.turn(id).await.unwrap());
        assert_eq!(Instant::now(), idle_at);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_queue_bound_callers_are_refused_in_order_otherwise() {
        let pacer = pacer(1_000, 2);
        let id = Uuid::new_v4();
        let first = pacer.turn(id).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..2 {
            let (pacer, order) = (pacer.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let turn = pacer.turn(id).await.unwrap();
                order.lock().unwrap().push(n);
                drop(turn);
            }));
            // Let the waiter queue before the next one comes.
            tokio::task::yield_now().await;
        }
        let full = pacer
            .turn(id)
            .await
            .err()
            .expect("a third waiter is refused");
        assert_eq!(full.waiting, 2);
        assert!(full.retry_after >= Duration::from_secs(1));
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1]);
        // The refused caller did not stay counted.
        drop(pacer.turn(id).await.unwrap());
    }

    #[test]
    fn typing_scales_with_length_up_to_the_cap() {
        let mut s = PacingSettings {
            typing: true,
            typing_ms_per_char: 50,
            typing_max_ms: 3_000,
            ..PacingSettings::default()
        };
        assert_eq!(s.typing_for(10), Some(Duration::from_millis(500)));
        assert_eq!(s.typing_for(1_000), Some(Duration::from_millis(3_000)));
        assert_eq!(s.typing_for(0), None);
        s.typing = false;
        assert_eq!(s.typing_for(10), None);
    }
}
