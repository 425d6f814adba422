//! The whatsapp-rust store: one device row per instance, and one keyed table
//! for everything else, partitioned by `space` (sessions, identities,
//! prekeys, ...). Two numeric columns and a flag carry what the store must
//! query or order by (prekey ids, timestamps, expiries, "uploaded").

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WaDevices {
    Table,
    InstanceId,
    Data,
}

#[derive(DeriveIden)]
enum WaKv {
    Table,
    InstanceId,
    Space,
    Key,
    Value,
    N1,
    N2,
    Flag,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
}

fn cascade(from: (WaDevices, WaDevices)) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name("fk_wa_devices_instance")
        .from(from.0, from.1)
        .to(Instances::Table, Instances::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WaDevices::Table)
                    .col(
                        ColumnDef::new(WaDevices::InstanceId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WaDevices::Data).blob().not_null())
                    .foreign_key(&mut cascade((WaDevices::Table, WaDevices::InstanceId)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WaKv::Table)
                    .col(ColumnDef::new(WaKv::InstanceId).uuid().not_null())
                    .col(ColumnDef::new(WaKv::Space).string_len(24).not_null())
                    .col(ColumnDef::new(WaKv::Key).string_len(512).not_null())
                    .col(ColumnDef::new(WaKv::Value).blob().not_null())
                    .col(ColumnDef::new(WaKv::N1).big_integer().null())
                    .col(ColumnDef::new(WaKv::N2).big_integer().null())
                    .col(
                        ColumnDef::new(WaKv::Flag)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .primary_key(
                        Index::create()
                            .col(WaKv::InstanceId)
                            .col(WaKv::Space)
                            .col(WaKv::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_wa_kv_instance")
                            .from(WaKv::Table, WaKv::InstanceId)
                            .to(Instances::Table, Instances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Expiry sweeps and "largest prekey id" scan one space by number.
        manager
            .create_index(
                Index::create()
                    .name("ix_wa_kv_space_n1")
                    .table(WaKv::Table)
                    .col(WaKv::InstanceId)
                    .col(WaKv::Space)
                    .col(WaKv::N1)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WaKv::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WaDevices::Table).to_owned())
            .await
    }
}
