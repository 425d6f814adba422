//! Messaging: phone numbers, media, the send pipeline, and tracking of
//! sent and received messages.

pub mod auto_read;
pub mod bodies;
pub mod calls;
pub mod compose;
pub mod fetch;
pub mod groups;
pub mod history;
pub mod media;
pub mod numbers;
pub mod operations;
pub mod pacing;
pub mod phone;
pub mod send;
pub mod spool;
pub mod tracking;
pub mod votes;
