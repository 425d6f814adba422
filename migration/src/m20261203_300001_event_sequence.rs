//! Events are sequenced after they commit (issue 19, issue 16).
//!
//! Taking an instance's position inside the recording transaction held the
//! instance's counter row locked until commit, so one instance's recording
//! transactions ran one after another. Now an event is inserted with
//! `position = 0` and `sequence = 0` (not yet sequenced) and takes no lock;
//! the sequencer then gives committed events, a batch at a time under the
//! `event_sequence` row lock, their per-instance `position` and a global
//! `sequence`. Readers see only sequenced events, and a batch becomes
//! visible at once and after every earlier batch, so a cursor on either
//! number never skips an event that commits later.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    InstanceId,
    Position,
    Sequence,
    Id,
}

#[derive(DeriveIden)]
enum EventSequence {
    Table,
    Id,
    LastSequence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventSequence::Table)
                    .col(
                        ColumnDef::new(EventSequence::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventSequence::LastSequence)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .add_column(
                        ColumnDef::new(WebhookEvents::Sequence)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Events recorded before this migration are in sequence by id.
        db.execute_unprepared(
            "UPDATE webhook_events SET sequence = r.n FROM ( \
               SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM webhook_events) AS r \
             WHERE webhook_events.id = r.id",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO event_sequence (id, last_sequence) \
             SELECT 1, COALESCE(MAX(sequence), 0) FROM webhook_events",
        )
        .await?;
        // On PostgreSQL unsequenced events all share position 0: the index
        // stays, without uniqueness (the sequencer alone hands positions
        // out, one batch at a time under a lock). SQLite numbers events in
        // the recording transaction, so its positions stay unique.
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .drop_index(
                    Index::drop()
                        .name("ux_webhook_events_position")
                        .table(WebhookEvents::Table)
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("ix_webhook_events_position")
                        .table(WebhookEvents::Table)
                        .col(WebhookEvents::InstanceId)
                        .col(WebhookEvents::Position)
                        .to_owned(),
                )
                .await?;
        }
        // The all-instances cursor reads by sequence; the sequencer finds
        // the unsequenced (sequence 0) in id order.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_events_sequence")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::Sequence)
                    .col(WebhookEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_webhook_events_sequence")
                    .table(WebhookEvents::Table)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .drop_index(
                    Index::drop()
                        .name("ix_webhook_events_position")
                        .table(WebhookEvents::Table)
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("ux_webhook_events_position")
                        .table(WebhookEvents::Table)
                        .col(WebhookEvents::InstanceId)
                        .col(WebhookEvents::Position)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .drop_column(WebhookEvents::Sequence)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(EventSequence::Table).to_owned())
            .await
    }
}
