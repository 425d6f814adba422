//! Messages remember what they said (issue 13, first step of issue 12's
//! history): a nullable `body` (JSON of the content, sealed when an
//! encryption key is set) on sent and received messages, so a reply can
//! quote the original; received messages also note when they were read.
//! One column per statement: SQLite adds a single column per ALTER TABLE.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    Body,
}

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    Body,
    ReadAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(ColumnDef::new(Messages::Body).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(InboundMessages::Table)
                    .add_column(ColumnDef::new(InboundMessages::Body).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(InboundMessages::Table)
                    .add_column(
                        ColumnDef::new(InboundMessages::ReadAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [InboundMessages::Body, InboundMessages::ReadAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(InboundMessages::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .drop_column(Messages::Body)
                    .to_owned(),
            )
            .await
    }
}
