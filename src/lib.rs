//! wagate: a self-hosted WhatsApp Web multi-device gateway.

pub mod access;
pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod engine;
pub mod instances;
pub mod media;
pub mod messaging;
pub mod metrics;
pub mod outbound;
pub mod retention;
pub mod scheduler;
pub mod sealing;
pub mod state;
pub mod streams;
pub mod telemetry;
pub mod webhooks;
pub mod whatsapp;

pub use outbound::install_crypto_provider;
