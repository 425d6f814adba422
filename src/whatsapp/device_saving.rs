//! Keeps each client's device state (its JID, account signature, push
//! name, prekey counters) on disk, newest first, within a second of a
//! change.
//!
//! whatsapp-rust 0.7 saves the device from a background task that wakes on
//! a change or every 30 s. Two gaps, both seen in the simulator bench (up
//! to 6 of 200 instances killed seconds after pairing came back asking for
//! a QR code):
//! - a change made while that task is busy saving raises a wake-up nobody
//!   listens for, so the state can stay unsaved for 30 s;
//! - a save writes the copy it was handed, so a slow save of an old copy
//!   can land after a newer one.
//!
//! So saves of one instance take turns and each writes the newest state
//! ([`NewestDevice`]), we flush right after pairing and on connect, and a
//! light ticker flushes whatever is still dirty.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;
use whatsapp_rust::client::Client;
use whatsapp_rust::store::persistence_manager::PersistenceManager;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::store::Device;

/// The longest a change to the device state waits for disk.
const TICK: Duration = Duration::from_secs(1);

/// One instance's device saves: a turn each, and the client's state as it
/// is now for the save to write instead of the copy it was given.
#[derive(Default)]
pub struct NewestDevice {
    manager: OnceLock<Weak<PersistenceManager>>,
    turn: Mutex<()>,
}

impl NewestDevice {
    /// Points saves at the running client's state.
    pub fn attach(&self, manager: &Arc<PersistenceManager>) {
        let _ = self.manager.set(Arc::downgrade(manager));
    }

    /// Held for the whole of a save.
    pub async fn turn(&self) -> MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// The client's state now; `None` before [`NewestDevice::attach`] or once
    /// the client is gone.
    pub fn current(&self) -> Option<Device> {
        let manager = self.manager.get()?.upgrade()?;
        Some(manager.get_device_snapshot().to_serializable())
    }
}

/// Events after which the device state must be on disk before anyone
/// hears of them.
pub fn must_flush(event: &Event) -> bool {
    matches!(event, Event::PairSuccess(_) | Event::Connected(_))
}

/// Writes the device state if it changed; logs a failure (the crate's own
/// saver retries it).
pub async fn flush(client: &Client, instance_id: Uuid) {
    if let Err(e) = client.persistence_manager().flush().await {
        tracing::warn!(%instance_id, error = %e, "saving the device state failed");
    }
}

/// Flushes every [`TICK`] until the client is gone or `retired` is set (a
/// logged-out device's keys are being wiped: nothing may write them back).
/// A flush with nothing dirty is one atomic swap.
pub fn spawn_ticker(client: Weak<Client>, instance_id: Uuid, retired: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if retired.load(Ordering::Acquire) {
                return;
            }
            let Some(client) = client.upgrade() else {
                return;
            };
            flush(&client, instance_id).await;
        }
    });
}
