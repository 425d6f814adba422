//! Issue 12's history: both directions of a conversation in one queryable
//! shape. Received messages gain their kind, the sender's number and LID,
//! and what later changed them (edited, deleted, reactions); sent messages
//! gain the recipient's LID, where they were sent from (`api` or `phone`)
//! and their reactions. Rows from before this migration read as kind
//! `unknown` (their kind was only in the event that reported them).
//! One column per statement: SQLite adds a single column per ALTER TABLE.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    ToLid,
    Origin,
    Reactions,
}

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    InstanceId,
    WaMessageId,
    Kind,
    SenderPhoneNumber,
    SenderLid,
    EditedAt,
    DeletedAt,
    Reactions,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sent = [
            ColumnDef::new(Messages::ToLid)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(Messages::Origin)
                .string_len(16)
                .not_null()
                .default("api")
                .to_owned(),
            // JSON list of `{from, emoji, at}`, one per reactor.
            ColumnDef::new(Messages::Reactions).text().null().to_owned(),
        ];
        for mut column in sent {
            manager
                .alter_table(
                    Table::alter()
                        .table(Messages::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let received = [
            ColumnDef::new(InboundMessages::Kind)
                .string_len(32)
                .not_null()
                .default("unknown")
                .to_owned(),
            ColumnDef::new(InboundMessages::SenderPhoneNumber)
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new(InboundMessages::SenderLid)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(InboundMessages::EditedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(InboundMessages::DeletedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(InboundMessages::Reactions)
                .text()
                .null()
                .to_owned(),
        ];
        for mut column in received {
            manager
                .alter_table(
                    Table::alter()
                        .table(InboundMessages::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Edits, deletions and reactions find their target by WhatsApp's id.
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_messages_wa_id")
                    .table(InboundMessages::Table)
                    .col(InboundMessages::InstanceId)
                    .col(InboundMessages::WaMessageId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_inbound_messages_wa_id")
                    .table(InboundMessages::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            InboundMessages::Kind,
            InboundMessages::SenderPhoneNumber,
            InboundMessages::SenderLid,
            InboundMessages::EditedAt,
            InboundMessages::DeletedAt,
            InboundMessages::Reactions,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(InboundMessages::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [Messages::ToLid, Messages::Origin, Messages::Reactions] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Messages::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
