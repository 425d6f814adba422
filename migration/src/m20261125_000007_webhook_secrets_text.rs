//! Webhook secrets become text: sealed at rest (`enc:v1:` + base64 of
//! header, ciphertext and tag) they outgrow the 128 characters a plain
//! `whsec_` secret needed. SQLite does not enforce a declared length, so
//! only PostgreSQL changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Secret,
    PreviousSecret,
}

fn alter(secret: ColumnDef, previous: ColumnDef) -> TableAlterStatement {
    Table::alter()
        .table(Webhooks::Table)
        .modify_column(secret)
        .modify_column(previous)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .alter_table(alter(
                ColumnDef::new(Webhooks::Secret)
                    .text()
                    .not_null()
                    .to_owned(),
                ColumnDef::new(Webhooks::PreviousSecret)
                    .text()
                    .null()
                    .to_owned(),
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        // Only plain secrets fit back; run with sealed ones, this fails
        // rather than truncating them.
        manager
            .alter_table(alter(
                ColumnDef::new(Webhooks::Secret)
                    .string_len(128)
                    .not_null()
                    .to_owned(),
                ColumnDef::new(Webhooks::PreviousSecret)
                    .string_len(128)
                    .null()
                    .to_owned(),
            ))
            .await
    }
}
