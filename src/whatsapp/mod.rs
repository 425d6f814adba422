//! The only code that names whatsapp-rust: the real [`crate::engine::Engine`].

pub mod contacts;
pub mod content;
pub mod device_saving;
mod download;
mod durable;
pub mod engine;
mod fault;
pub mod groups;
pub mod http;
pub mod store;
pub mod translate;
mod upload;

pub use engine::{BackendSource, WhatsAppEngine};
