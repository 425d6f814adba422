//! One broker connection per sink, shared by its deliveries: made on first
//! use, made again when the broker dropped it or the sink's target changed,
//! and after a failed attempt to connect not tried again before a backoff
//! (doubling up to a cap) has passed. Deliveries meanwhile fail at once
//! with the last error and retry on their schedule, so an unreachable
//! broker or a wrong password costs one connection attempt per backoff,
//! not one per event.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use uuid::Uuid;

use super::Outcome;
use crate::webhooks::sink::Broker;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A live connection a pool can tell is broken.
pub trait Live: Send + Sync + 'static {
    fn is_live(&self) -> bool;
}

enum State<C> {
    Up(Arc<C>),
    Down {
        until: Instant,
        backoff: Duration,
        last: Outcome,
    },
}

struct Slot<C> {
    broker: Arc<Broker>,
    state: State<C>,
}

/// A sink's slot, locked while connecting, so concurrent deliveries wait
/// for one connection instead of each opening their own.
type Shared<C> = Arc<Mutex<Option<Slot<C>>>>;

pub struct Pool<C> {
    slots: std::sync::Mutex<HashMap<Uuid, Shared<C>>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Self {
            slots: std::sync::Mutex::default(),
        }
    }
}

impl<C: Live> Pool<C> {
    /// The sink's connection, made with `connect` if there is none fit for
    /// use; the failure to report when there is none and none can be made.
    pub async fn get<F, Fut>(
        &self,
        sink: Uuid,
        broker: &Arc<Broker>,
        connect: F,
    ) -> Result<Arc<C>, Outcome>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, Outcome>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(sink).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let mut backoff = FIRST_BACKOFF;
        if let Some(s) = slot.as_ref()
            && s.broker == *broker
        {
            match &s.state {
                State::Up(c) if c.is_live() => return Ok(c.clone()),
                State::Up(_) => {}
                State::Down {
                    until,
                    backoff: b,
                    last,
                } => {
                    if Instant::now() < *until {
                        return Err(last.clone());
                    }
                    backoff = (*b * 2).min(MAX_BACKOFF);
                }
            }
        }
        match connect().await {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(Slot {
                    broker: broker.clone(),
                    state: State::Up(c.clone()),
                });
                Ok(c)
            }
            Err(last) => {
                *slot = Some(Slot {
                    broker: broker.clone(),
                    state: State::Down {
                        until: Instant::now() + backoff,
                        backoff,
                        last: last.clone(),
                    },
                });
                Err(last)
            }
        }
    }

    /// Forgets the sink's connection (it failed a delivery): the next
    /// delivery connects again.
    pub async fn drop_connection(&self, sink: Uuid) {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get(&sink).cloned()
        };
        if let Some(slot) = slot {
            let mut slot = slot.lock().await;
            if let Some(s) = slot.as_mut()
                && matches!(s.state, State::Up(_))
            {
                *slot = None;
            }
        }
    }
}
