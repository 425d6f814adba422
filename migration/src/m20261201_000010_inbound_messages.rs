//! Messages received, one row each, keyed as WhatsApp keys them.
//!
//! The client acknowledges an inbound message to the server only once the
//! gateway has committed it; a crash in between makes the server deliver it
//! again. This key, `(chat, sender, WhatsApp id)` per instance, is what makes
//! the second commit record nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    Id,
    InstanceId,
    ChatJid,
    SenderJid,
    WaMessageId,
    EventId,
    SentAt,
    CreatedAt,
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
                    .table(InboundMessages::Table)
                    .col(
                        ColumnDef::new(InboundMessages::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::InstanceId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::ChatJid)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::SenderJid)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::WaMessageId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::EventId)
                            .string_len(40)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::SentAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMessages::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_inbound_messages_instance")
                            .from(InboundMessages::Table, InboundMessages::InstanceId)
                            .to(Instances::Table, Instances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_inbound_messages_key")
                    .table(InboundMessages::Table)
                    .col(InboundMessages::InstanceId)
                    .col(InboundMessages::ChatJid)
                    .col(InboundMessages::SenderJid)
                    .col(InboundMessages::WaMessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Retention deletes by age.
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_messages_created_at")
                    .table(InboundMessages::Table)
                    .col(InboundMessages::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InboundMessages::Table).to_owned())
            .await
    }
}
