//! The only code that names whatsapp-rust: the real [`crate::engine::Engine`].

pub mod device_saving;
pub mod engine;
pub mod http;
pub mod store;
pub mod translate;

pub use engine::{BackendSource, WhatsAppEngine};
