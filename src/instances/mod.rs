//! Instances: one WhatsApp number each, and the rules of their lifecycle.

pub mod lifecycle;
pub mod sessions;
pub mod store;

pub use entity::instances::{Model as Instance, Status};
pub use store::{InstanceError, Page};
