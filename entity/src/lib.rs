//! SeaORM entities: one file per table, nothing else.

pub mod api_keys;
pub mod event_positions;
pub mod idempotency_keys;
pub mod inbound_media;
pub mod inbound_messages;
pub mod instances;
pub mod messages;
pub mod poll_votes;
pub mod wa_devices;
pub mod wa_kv;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhook_due;
pub mod webhook_events;
pub mod webhooks;
