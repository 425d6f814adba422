//! Broker sinks beside webhooks (issue 17): a destination's `kind`
//! (`webhook`, `nats`, `amqp`), its kind-specific `target` (JSON, nothing
//! secret in it) and its broker `credentials`, sealed like the secrets.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Kind,
    Target,
    Credentials,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        let columns = [
            ColumnDef::new(Webhooks::Kind)
                .string_len(16)
                .not_null()
                .default("webhook")
                .to_owned(),
            ColumnDef::new(Webhooks::Target).json().null().to_owned(),
            ColumnDef::new(Webhooks::Credentials)
                .text()
                .null()
                .to_owned(),
        ];
        for column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Webhooks::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Webhooks::Credentials, Webhooks::Target, Webhooks::Kind] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Webhooks::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
