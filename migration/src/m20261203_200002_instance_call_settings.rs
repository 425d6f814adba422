//! Per-instance conversation settings (issue 13): reject incoming calls
//! (with an optional text sent to the caller) and mark inbound messages read
//! once their webhooks took them. Off by default.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    RejectCalls,
    CallReply,
    AutoRead,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(Instances::RejectCalls)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(Instances::CallReply)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(Instances::AutoRead)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Instances::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Instances::RejectCalls,
            Instances::CallReply,
            Instances::AutoRead,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Instances::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
