//! The latest vote of each voter on each poll an instance sent (issue 13),
//! so a poll's tally survives restarts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PollVotes {
    Table,
    Id,
    InstanceId,
    PollMessageId,
    VoterJid,
    VoterPhoneNumber,
    VoterLid,
    Options,
    VotedAt,
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
                    .table(PollVotes::Table)
                    .col(
                        ColumnDef::new(PollVotes::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PollVotes::InstanceId).uuid().not_null())
                    .col(
                        ColumnDef::new(PollVotes::PollMessageId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PollVotes::VoterJid)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PollVotes::VoterPhoneNumber)
                            .string_len(32)
                            .null(),
                    )
                    .col(ColumnDef::new(PollVotes::VoterLid).string_len(128).null())
                    // JSON list of the option names picked; empty: vote withdrawn.
                    .col(ColumnDef::new(PollVotes::Options).text().not_null())
                    .col(
                        ColumnDef::new(PollVotes::VotedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PollVotes::Table, PollVotes::InstanceId)
                            .to(Instances::Table, Instances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("poll_votes_voter")
                    .table(PollVotes::Table)
                    .col(PollVotes::InstanceId)
                    .col(PollVotes::PollMessageId)
                    .col(PollVotes::VoterJid)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PollVotes::Table).to_owned())
            .await
    }
}
