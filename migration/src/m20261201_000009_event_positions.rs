//! Events get a commit-ordered position per instance.
//!
//! Event ids are UUIDv7s taken before commit, so two transactions of one
//! instance can commit out of id order and a reader paging by id can step
//! past an event that commits a moment later. A position is taken from the
//! instance's counter row inside the recording transaction: the row stays
//! locked until that transaction ends, so positions are handed out in commit
//! order and a rolled-back transaction gives its number back (no gaps).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    InstanceId,
    Position,
}

#[derive(DeriveIden)]
enum EventPositions {
    Table,
    InstanceId,
    LastPosition,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventPositions::Table)
                    .col(
                        ColumnDef::new(EventPositions::InstanceId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventPositions::LastPosition)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_event_positions_instance")
                            .from(EventPositions::Table, EventPositions::InstanceId)
                            .to(Instances::Table, Instances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .add_column(
                        ColumnDef::new(WebhookEvents::Position)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        // Events recorded before this migration keep their id order.
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE webhook_events SET position = r.n FROM ( \
               SELECT id, ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY id) AS n \
               FROM webhook_events) AS r \
             WHERE webhook_events.id = r.id",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO event_positions (instance_id, last_position) \
             SELECT instance_id, MAX(position) FROM webhook_events GROUP BY instance_id",
        )
        .await?;
        // The catch-up cursor, ordered webhooks and streams read by it.
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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_webhook_events_position")
                    .table(WebhookEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEvents::Table)
                    .drop_column(WebhookEvents::Position)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(EventPositions::Table).to_owned())
            .await
    }
}
