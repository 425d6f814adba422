//! The dispatcher's indexes cover open deliveries only.
//!
//! Every delivery is updated twice on its way to `succeeded`, and the old
//! `(status, next_attempt_at)` index kept an entry for every version of
//! every row: a claim walked the entries of rows long delivered (dead ones
//! until vacuum), and the planner sorted the whole pending set per claim.
//! Partial indexes hold only what the dispatcher looks for, in the order
//! it wants it, and a row that leaves them adds no entry when it changes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    Status,
    NextAttemptAt,
}

fn status() -> Expr {
    Expr::col(WebhookDeliveries::Status)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .to_owned(),
            )
            .await?;
        // The claim: pending rows in the order they fall due.
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
        // An ordered webhook's queue head; leases that ran out (a scan of
        // open rows only).
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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }
}
