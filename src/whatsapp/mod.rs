//! The only code that names whatsapp-rust: the real [`crate::engine::Engine`].

pub mod engine;
pub mod http;
pub mod memory;
pub mod translate;

pub use engine::{BackendSource, WhatsAppEngine};
