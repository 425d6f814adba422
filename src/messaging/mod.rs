//! Messaging: phone numbers, media, the send pipeline, and tracking of
//! sent and received messages.

pub mod auto_read;
pub mod bodies;
pub mod calls;
pub mod changes;
pub mod chat_list;
pub mod compose;
pub mod contacts;
pub mod fetch;
pub mod group_receipts;
pub mod group_subjects;
pub mod groups;
pub mod history;
pub mod idempotency;
pub mod media;
pub mod numbers;
pub mod operations;
pub mod pacing;
pub mod phone;
pub mod phone_sent;
pub mod send;
pub mod spool;
pub mod timeline;
pub mod tracking;
pub mod votes;
