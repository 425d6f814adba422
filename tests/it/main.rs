//! Integration tests: the real server over real HTTP on a real database.
//! SQLite by default; PostgreSQL when `TEST_DATABASE_URL` names a server.

mod access;
#[cfg(unix)]
mod brokers;
mod chats;
mod cluster;
#[cfg(feature = "sim")]
mod cluster_sim;
mod console;
mod conversation_settings;
mod conversations;
mod event_cursor;
mod groups;
mod harness;
mod history;
mod idempotency;
mod inbound_media;
mod instances;
mod media_url;
mod messaging;
mod metrics;
mod pairing;
mod playground;
mod process;
mod receiver;
mod reencrypt;
mod release_features;
mod scheduler;
mod secrets_at_rest;
#[cfg(feature = "sim")]
mod sim_e2e;
#[cfg(feature = "sim")]
mod sim_groups;
#[cfg(feature = "sim")]
mod sim_history;
#[cfg(feature = "sim")]
mod sim_inbound_kinds;
#[cfg(feature = "sim")]
mod sim_inbound_media;
#[cfg(feature = "sim")]
mod sim_outbound;
#[cfg(feature = "sim")]
mod sim_replies;
#[cfg(feature = "sim")]
mod sim_seed;
#[cfg(feature = "sim")]
mod sim_upload;
#[cfg(unix)]
mod sinks;
mod stream;
mod system;
mod wa_store;
mod webhook_crash;
mod webhooks;
mod whatsapp_offline;
