use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    Name,
    PhoneNumber,
    Jid,
    Status,
    IsConnected,
    LastConnectedAt,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .col(
                        ColumnDef::new(Instances::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Instances::Name).string_len(100).null())
                    .col(ColumnDef::new(Instances::PhoneNumber).string_len(20).null())
                    .col(ColumnDef::new(Instances::Jid).string_len(128).null())
                    .col(ColumnDef::new(Instances::Status).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Instances::IsConnected)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Instances::LastConnectedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Instances::LastError).text().null())
                    .col(
                        ColumnDef::new(Instances::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Instances::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // NULLs do not collide in a unique index on either backend, so only
        // paired instances claim their number.
        manager
            .create_index(
                Index::create()
                    .name("ux_instances_phone_number")
                    .table(Instances::Table)
                    .col(Instances::PhoneNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_instances_status")
                    .table(Instances::Table)
                    .col(Instances::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await
    }
}
