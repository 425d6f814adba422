//! Schema migrations. One file per migration; never edit one that has shipped.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_instances;
mod m20261124_000002_create_webhook_events;
mod m20261124_000003_create_wa_store;
mod m20261124_000004_create_webhooks;
mod m20261124_000005_create_messages;
mod m20261125_000006_create_api_keys;
mod m20261125_000007_webhook_secrets_text;
mod m20261130_000008_webhook_open_indexes;
mod m20261201_000009_event_positions;
mod m20261201_000010_inbound_messages;
mod m20261201_230000_message_edits_ob;
mod m20261203_100001_inbound_media;
mod m20261203_200001_message_bodies;
mod m20261203_200002_instance_call_settings;
mod m20261203_200003_poll_votes;
mod m20261203_300001_event_sequence;
mod m20261204_100001_conversation_history;
mod m20261204_200001_group_recipients;
mod m20261204_200002_instance_ignore_groups;
mod m20261204_400001_cluster;
mod m20261205_200001_message_receipts;
mod m20261205_300001_webhook_sinks;
mod m20261206_190001_webhook_due;
mod m20261207_100001_idempotency_claimer;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_instances::Migration),
            Box::new(m20261124_000002_create_webhook_events::Migration),
            Box::new(m20261124_000003_create_wa_store::Migration),
            Box::new(m20261124_000004_create_webhooks::Migration),
            Box::new(m20261124_000005_create_messages::Migration),
            Box::new(m20261125_000006_create_api_keys::Migration),
            Box::new(m20261125_000007_webhook_secrets_text::Migration),
            Box::new(m20261130_000008_webhook_open_indexes::Migration),
            Box::new(m20261201_000009_event_positions::Migration),
            Box::new(m20261201_000010_inbound_messages::Migration),
            Box::new(m20261201_230000_message_edits_ob::Migration),
            Box::new(m20261203_100001_inbound_media::Migration),
            Box::new(m20261203_200001_message_bodies::Migration),
            Box::new(m20261203_200002_instance_call_settings::Migration),
            Box::new(m20261203_200003_poll_votes::Migration),
            Box::new(m20261203_300001_event_sequence::Migration),
            Box::new(m20261204_100001_conversation_history::Migration),
            Box::new(m20261204_200001_group_recipients::Migration),
            Box::new(m20261204_200002_instance_ignore_groups::Migration),
            Box::new(m20261204_400001_cluster::Migration),
            Box::new(m20261205_200001_message_receipts::Migration),
            Box::new(m20261205_300001_webhook_sinks::Migration),
            Box::new(m20261206_190001_webhook_due::Migration),
            Box::new(m20261207_100001_idempotency_claimer::Migration),
        ]
    }
}
