//! Several nodes on one PostgreSQL (issue 15): the node registry, one lease
//! per instance with a fencing epoch, named leader leases for cluster-wide
//! jobs, and who ran each job last. SQLite gets the tables too, so one
//! schema serves both, but only PostgreSQL deployments use them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClusterNodes {
    Table,
    Id,
    AdvertisedUrl,
    Version,
    StartedAt,
    LastHeartbeat,
    StoppedAt,
}

#[derive(DeriveIden)]
enum InstanceLeases {
    Table,
    InstanceId,
    OwnerNode,
    LeaseUntil,
    Epoch,
}

#[derive(DeriveIden)]
enum ClusterLeaders {
    Table,
    Name,
    OwnerNode,
    LeaseUntil,
}

#[derive(DeriveIden)]
enum ClusterJobRuns {
    Table,
    Name,
    NodeId,
    RanAt,
    DurationMs,
    Error,
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
                    .table(ClusterNodes::Table)
                    .col(
                        ColumnDef::new(ClusterNodes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ClusterNodes::AdvertisedUrl)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ClusterNodes::Version).text().not_null())
                    .col(
                        ColumnDef::new(ClusterNodes::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ClusterNodes::LastHeartbeat)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ClusterNodes::StoppedAt).timestamp_with_time_zone())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InstanceLeases::Table)
                    .col(
                        ColumnDef::new(InstanceLeases::InstanceId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(InstanceLeases::OwnerNode).uuid())
                    .col(
                        ColumnDef::new(InstanceLeases::LeaseUntil)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InstanceLeases::Epoch)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(InstanceLeases::Table, InstanceLeases::InstanceId)
                            .to(Instances::Table, Instances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("instance_leases_owner")
                    .table(InstanceLeases::Table)
                    .col(InstanceLeases::OwnerNode)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClusterLeaders::Table)
                    .col(
                        ColumnDef::new(ClusterLeaders::Name)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ClusterLeaders::OwnerNode).uuid().not_null())
                    .col(
                        ColumnDef::new(ClusterLeaders::LeaseUntil)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClusterJobRuns::Table)
                    .col(
                        ColumnDef::new(ClusterJobRuns::Name)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ClusterJobRuns::NodeId).uuid().not_null())
                    .col(
                        ColumnDef::new(ClusterJobRuns::RanAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ClusterJobRuns::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ClusterJobRuns::Error).text())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ClusterJobRuns::Table.into_iden(),
            ClusterLeaders::Table.into_iden(),
            InstanceLeases::Table.into_iden(),
            ClusterNodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
