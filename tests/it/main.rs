//! Integration tests: the real server over real HTTP on a real database.
//! SQLite by default; PostgreSQL when `TEST_DATABASE_URL` names a server.

mod access;
mod event_cursor;
mod harness;
mod instances;
mod media_url;
mod messaging;
mod pairing;
mod process;
mod receiver;
mod reencrypt;
mod release_features;
mod scheduler;
mod secrets_at_rest;
#[cfg(feature = "sim")]
mod sim_e2e;
mod system;
mod wa_store;
mod webhook_crash;
mod webhooks;
mod whatsapp_offline;
