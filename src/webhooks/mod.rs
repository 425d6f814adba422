//! Webhooks: the event outbox, registrations, Standard Webhooks signing and
//! the dispatcher that delivers, retries and records every attempt.

pub mod attempt;
pub mod claim;
pub mod complete;
pub mod dispatcher;
pub mod events;
pub mod ops;
pub mod payload;
pub mod registry;
pub mod retry;
pub mod signing;

use std::sync::Arc;

use tokio::sync::Notify;

pub use events::{Audience, EventType, record, record_for};
pub use registry::WebhookError;

/// The handle state-changing code holds: after committing a transaction
/// that recorded events, call [`Webhooks::wake`] so the dispatcher looks at
/// once instead of at its next sweep. Cheap to clone.
#[derive(Clone, Default)]
pub struct Webhooks {
    notify: Arc<Notify>,
}

impl Webhooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the dispatcher. Never blocks; wakes are not lost if the
    /// dispatcher is busy (it looks again when it is done).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    pub(crate) fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}
