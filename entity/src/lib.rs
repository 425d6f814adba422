//! SeaORM entities: one file per table, nothing else.

pub mod instances;
