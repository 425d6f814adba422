//! Handing fresh deliveries straight to this process's dispatcher.
//!
//! The transaction that records an event may claim the event's deliveries
//! for the local dispatcher (status `delivering`, the dispatcher's token and
//! lease) when its webhook has room for them. After the commit the jobs reach
//! the dispatcher in memory and are POSTed at once. Event-to-POST latency
//! then no longer waits for a claim query, and each delivery saves the row
//! update a claim makes. Should the process die between the commit and the
//! hand-off, the lease runs out and any dispatcher claims the delivery like
//! every other: at least once, never lost.
//!
//! Hand-offs and claims share the dispatcher's [`Lanes`]: a hand-off takes
//! a place only while its webhook has a free request or room in its queue,
//! and none while due rows of that webhook wait in the database (they go
//! first, through the claim).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::webhooks::Model as Webhook;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::attempt::Job;
use super::claim::{destination_of, signing_secrets};
use super::lanes::{Lanes, Ticket};
use crate::sealing::Keyring;

/// A handed-off job, with the place it was promised.
pub type Ready = (Job, Ticket);

/// What a running dispatcher lends the transactions that record events.
pub struct Local {
    pub(crate) token: Uuid,
    pub(crate) lease: chrono::Duration,
    pub(crate) keyring: Keyring,
    pub(crate) lanes: Arc<Lanes>,
    pub(crate) jobs: mpsc::UnboundedSender<Ready>,
}

impl Local {
    /// Claims a fresh delivery of `event_id` to `webhook` for this
    /// dispatcher, if its webhook has room for it.
    /// Ordered webhooks go through the claim query, which keeps their order.
    pub fn claim(
        &self,
        webhook: &Webhook,
        delivery_id: Uuid,
        event_id: &str,
        event_type: &str,
        instance_id: Uuid,
        body: &[u8],
    ) -> Option<Ready> {
        if !webhook.enabled || webhook.ordered {
            return None;
        }
        let ticket = self.lanes.reserve(webhook.id)?;
        let job = Job {
            delivery_id,
            webhook_id: webhook.id,
            instance_id,
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            attempt: 1,
            url: webhook.url.clone(),
            destination: destination_of(&self.keyring, webhook),
            secrets: signing_secrets(
                &self.keyring,
                webhook.id,
                webhook.secret.clone(),
                webhook.previous_secret.clone(),
                webhook.previous_secret_expires_at,
            ),
            body: body.to_vec(),
            lease_until: self.lease_until(Utc::now()),
            handed_off: true,
        };
        Some((job, ticket))
    }

    pub fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.lease).unwrap_or(now)
    }
}
