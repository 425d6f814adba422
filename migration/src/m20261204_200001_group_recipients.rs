//! A message's recipient may be a group (issue 14): `to_number` then holds
//! the group's JID, longer than the 20 digits a phone number needed.
//! SQLite does not enforce a declared length, so only PostgreSQL changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    ToNumber,
}

fn alter(len: u32) -> TableAlterStatement {
    Table::alter()
        .table(Messages::Table)
        .modify_column(
            ColumnDef::new(Messages::ToNumber)
                .string_len(len)
                .not_null()
                .to_owned(),
        )
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager.alter_table(alter(64)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        // Rows sent to groups do not fit back; this fails rather than
        // truncating them.
        manager.alter_table(alter(20)).await
    }
}
