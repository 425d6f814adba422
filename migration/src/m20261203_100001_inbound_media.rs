//! Media of inbound messages: one row per message that carried an image,
//! video, audio, voice note, document or sticker. It keeps what a download
//! needs (sealed when an encryption key is set: the media key is a
//! secret), the download's state and, once stored, the file's content hash.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InboundMedia {
    Table,
    Id,
    InstanceId,
    InboundMessageId,
    WaMessageId,
    ChatJid,
    SenderJid,
    Kind,
    MimeType,
    FileName,
    Size,
    Sha256,
    Reference,
    Status,
    ErrorCode,
    ErrorDetail,
    StoredHash,
    StoredSize,
    Attempts,
    ReadyAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let text = |c: InboundMedia, len: u32| ColumnDef::new(c).string_len(len).null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(InboundMedia::Table)
                    .col(
                        ColumnDef::new(InboundMedia::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(InboundMedia::InstanceId).uuid().not_null())
                    .col(
                        ColumnDef::new(InboundMedia::InboundMessageId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::WaMessageId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::ChatJid)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::SenderJid)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(InboundMedia::Kind).string_len(16).not_null())
                    .col(text(InboundMedia::MimeType, 255))
                    .col(ColumnDef::new(InboundMedia::FileName).text().null())
                    .col(ColumnDef::new(InboundMedia::Size).big_integer().null())
                    .col(text(InboundMedia::Sha256, 64))
                    .col(ColumnDef::new(InboundMedia::Reference).text().null())
                    .col(
                        ColumnDef::new(InboundMedia::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(text(InboundMedia::ErrorCode, 64))
                    .col(ColumnDef::new(InboundMedia::ErrorDetail).text().null())
                    .col(text(InboundMedia::StoredHash, 64))
                    .col(
                        ColumnDef::new(InboundMedia::StoredSize)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::ReadyAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(InboundMedia::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_inbound_media_instance")
                            .from(InboundMedia::Table, InboundMedia::InstanceId)
                            .to(Instances::Table, Instances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The media route finds a message's media by WhatsApp's id.
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_media_message")
                    .table(InboundMedia::Table)
                    .col(InboundMedia::InstanceId)
                    .col(InboundMedia::WaMessageId)
                    .to_owned(),
            )
            .await?;
        // Resuming pending downloads, and retention by age.
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_media_status")
                    .table(InboundMedia::Table)
                    .col(InboundMedia::Status)
                    .col(InboundMedia::InstanceId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_media_created_at")
                    .table(InboundMedia::Table)
                    .col(InboundMedia::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Whether a stored file is still referenced.
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_media_stored_hash")
                    .table(InboundMedia::Table)
                    .col(InboundMedia::StoredHash)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InboundMedia::Table).to_owned())
            .await
    }
}
