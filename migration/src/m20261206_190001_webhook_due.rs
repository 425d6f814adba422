//! A small due queue beside `webhook_deliveries` (issue 19).
//!
//! The dispatcher's partial indexes over `webhook_deliveries` named
//! `status` in their predicates, so every status change of a delivery (a
//! claim, a success, a retry) was a new row version with new entries in
//! every index of that large table. `webhook_due` holds only open
//! deliveries (pending or being delivered) with what a claim looks for;
//! `webhook_deliveries` loses those indexes, and its status changes touch
//! no indexed column, so PostgreSQL can update its rows in place (HOT).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDue {
    Table,
    DeliveryId,
    WebhookId,
    EventId,
    NextAttemptAt,
    LockedUntil,
    ClaimToken,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    Status,
    NextAttemptAt,
}

fn ts(col: impl IntoIden, null: bool) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    def.timestamp_with_time_zone();
    if null {
        def.null();
    } else {
        def.not_null();
    }
    def
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDue::Table)
                    .col(
                        ColumnDef::new(WebhookDue::DeliveryId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookDue::WebhookId).uuid().not_null())
                    .col(
                        ColumnDef::new(WebhookDue::EventId)
                            .string_len(40)
                            .not_null(),
                    )
                    .col(ts(WebhookDue::NextAttemptAt, false))
                    .col(ts(WebhookDue::LockedUntil, true))
                    .col(ColumnDef::new(WebhookDue::ClaimToken).uuid().null())
                    // Deleting a delivery (its webhook, event or instance
                    // went) takes its place in the queue with it.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_due_delivery")
                            .from(WebhookDue::Table, WebhookDue::DeliveryId)
                            .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The claim: open rows in the order they fall due. A claim or a
        // release changes only the lease columns, never this key.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_due_next")
                    .table(WebhookDue::Table)
                    .col(WebhookDue::NextAttemptAt)
                    .col(WebhookDue::DeliveryId)
                    .to_owned(),
            )
            .await?;
        // An ordered webhook's queue head.
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_due_webhook")
                    .table(WebhookDue::Table)
                    .col(WebhookDue::WebhookId)
                    .col(WebhookDue::DeliveryId)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO webhook_due \
               (delivery_id, webhook_id, event_id, next_attempt_at, locked_until, claim_token) \
             SELECT id, webhook_id, event_id, next_attempt_at, locked_until, claim_token \
             FROM webhook_deliveries WHERE status IN ('pending', 'delivering')",
        )
        .await?;
        for name in [
            "ix_webhook_deliveries_open",
            "ix_webhook_deliveries_pending",
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(WebhookDeliveries::Table)
                        .to_owned(),
                )
                .await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            // Room on each page for the in-place versions of its rows.
            db.execute_unprepared("ALTER TABLE webhook_deliveries SET (fillfactor = 80)")
                .await?;
            db.execute_unprepared("ALTER TABLE webhook_due SET (fillfactor = 70)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE webhook_deliveries RESET (fillfactor)")
                .await?;
        }
        let status = || Expr::col(WebhookDeliveries::Status);
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_pending")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .col(WebhookDeliveries::Id)
                    .and_where(status().eq("pending"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_open")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::WebhookId)
                    .col(WebhookDeliveries::Id)
                    .and_where(status().is_in(["pending", "delivering"]))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookDue::Table).to_owned())
            .await
    }
}
