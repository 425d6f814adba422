//! Webhooks: the event outbox today; registrations, signing and delivery
//! arrive with the webhooks issue.

pub mod events;

pub use events::{EventType, record};
