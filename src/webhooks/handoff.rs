//! Handing fresh deliveries straight to this process's dispatcher.
//!
//! The transaction that records an event may claim the event's deliveries
//! for the local dispatcher (status `delivering`, the dispatcher's token and
//! lease) when it has a free slot for them. After the commit the jobs reach
//! the dispatcher in memory and are POSTed at once. Event-to-POST latency
//! then no longer waits for a claim query, and each delivery saves the row
//! update a claim makes. Should the process die between the commit and the
//! hand-off, the lease runs out and any dispatcher claims the delivery like
//! every other: at least once, never lost.
//!
//! Slots are shared with the dispatcher's claims, so hand-offs and claims
//! together stay within `max_in_flight` and `max_in_flight_per_webhook`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use entity::webhooks::Model as Webhook;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::attempt::Job;
use super::claim::signing_secrets;
use crate::sealing::Keyring;

/// The in-flight budget: attempts running, started or handed off.
pub struct Slots {
    total: usize,
    per_webhook: usize,
    taken: Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    total: usize,
    per_webhook: HashMap<Uuid, usize>,
}

impl Slots {
    pub fn new(total: usize, per_webhook: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_webhook,
            taken: Mutex::default(),
        })
    }

    fn taken(&self) -> MutexGuard<'_, Taken> {
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one attempt to `webhook_id`, if the budget has one.
    pub fn take(self: &Arc<Self>, webhook_id: Uuid) -> Option<Slot> {
        let mut taken = self.taken();
        let n = taken.per_webhook.get(&webhook_id).copied().unwrap_or(0);
        if taken.total >= self.total || n >= self.per_webhook {
            return None;
        }
        taken.total += 1;
        taken.per_webhook.insert(webhook_id, n + 1);
        Some(Slot {
            slots: self.clone(),
            webhook_id,
        })
    }

    /// How many more attempts may start.
    pub fn room(&self) -> usize {
        self.total.saturating_sub(self.taken().total)
    }

    /// The webhooks that have no slot left.
    pub fn saturated(&self) -> Vec<Uuid> {
        self.taken()
            .per_webhook
            .iter()
            .filter(|(_, n)| **n >= self.per_webhook)
            .map(|(id, _)| *id)
            .collect()
    }

    fn give_back(&self, webhook_id: Uuid) {
        let mut taken = self.taken();
        taken.total = taken.total.saturating_sub(1);
        if let Some(n) = taken.per_webhook.get_mut(&webhook_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                taken.per_webhook.remove(&webhook_id);
            }
        }
    }
}

/// One taken slot; dropping it gives it back, whichever way the attempt
/// ended (finished, aborted, or a hand-off whose transaction failed).
pub struct Slot {
    slots: Arc<Slots>,
    webhook_id: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.give_back(self.webhook_id);
    }
}

/// A job ready to run, with the slot it runs in.
pub type Ready = (Job, Slot);

/// What a running dispatcher lends the transactions that record events.
pub struct Local {
    pub(crate) token: Uuid,
    pub(crate) lease: chrono::Duration,
    pub(crate) keyring: Keyring,
    pub(crate) slots: Arc<Slots>,
    pub(crate) jobs: mpsc::UnboundedSender<Ready>,
}

impl Local {
    /// Claims a fresh delivery of `event_id` to `webhook` for this
    /// dispatcher, if it may be delivered now and a slot is free.
    /// Ordered webhooks go through the claim query, which keeps their order.
    pub fn claim(
        &self,
        webhook: &Webhook,
        delivery_id: Uuid,
        event_id: &str,
        instance_id: Uuid,
        body: &[u8],
    ) -> Option<Ready> {
        if !webhook.enabled || webhook.ordered {
            return None;
        }
        let slot = self.slots.take(webhook.id)?;
        let job = Job {
            delivery_id,
            webhook_id: webhook.id,
            instance_id,
            event_id: event_id.to_owned(),
            attempt: 1,
            url: webhook.url.clone(),
            secrets: signing_secrets(
                &self.keyring,
                webhook.id,
                webhook.secret.clone(),
                webhook.previous_secret.clone(),
                webhook.previous_secret_expires_at,
            ),
            body: body.to_vec(),
        };
        Some((job, slot))
    }

    pub fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.lease).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_both_limits_and_come_back_on_drop() {
        let slots = Slots::new(3, 2);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let a1 = slots.take(a).expect("a first");
        let a2 = slots.take(a).expect("a second");
        assert!(slots.take(a).is_none(), "two per webhook");
        assert_eq!(slots.saturated(), vec![a]);
        let b1 = slots.take(b).expect("b first");
        assert!(slots.take(b).is_none(), "three in all");
        assert_eq!(slots.room(), 0);
        drop(a1);
        assert_eq!(slots.room(), 1);
        assert!(slots.saturated().is_empty());
        let a3 = slots.take(a).expect("a again");
        drop((a2, a3, b1));
        assert_eq!(slots.room(), 3);
        assert!(
            slots.taken().per_webhook.is_empty(),
            "no empty entries kept"
        );
    }
}
