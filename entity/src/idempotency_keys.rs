use sea_orm::entity::prelude::*;

/// A send request's `Idempotency-Key`, with the first answer to replay.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// SHA-256 (hex) of the request, so a reused key with another body is told apart.
    pub request_hash: String,
    /// `None` while the first request is still in flight.
    pub response: Option<Json>,
    pub created_at: DateTimeUtc,
    /// Who holds the claim: `lease:{node}:{epoch}` on a cluster node, else
    /// `run:{id}` of the process; `None` from before claimers were kept.
    pub claimed_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
