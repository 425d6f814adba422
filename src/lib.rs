//! wagate: a self-hosted WhatsApp Web multi-device gateway.

pub mod api;
pub mod app;
pub mod config;
pub mod db;
pub mod instances;
pub mod outbound;
pub mod telemetry;
pub mod webhooks;
