//! SeaORM entities: one file per table, nothing else.

pub mod instances;
pub mod webhook_events;
