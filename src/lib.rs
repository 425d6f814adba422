//! wagate: a self-hosted WhatsApp Web multi-device gateway.

pub mod api;
pub mod app;
pub mod config;
pub mod db;
pub mod engine;
pub mod instances;
pub mod messaging;
pub mod telemetry;
pub mod webhooks;
pub mod whatsapp;

/// Installs ring as the process's TLS provider (reqwest is built without one
/// so that only ring, which the WhatsApp transport already uses, is linked).
pub fn install_crypto_provider() {
    // Err means one is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
