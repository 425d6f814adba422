use sea_orm::entity::prelude::*;

/// An API key scoped to some instances. Only its digest is kept.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: Option<String>,
    /// The key's first characters: shown in lists, used to find the row.
    pub prefix: String,
    /// SHA-256 (hex) of the whole key.
    pub digest: String,
    /// Scope names (`send`, `read`, `webhooks`, `manage`).
    pub scopes: Json,
    /// Instance ids the key may see.
    pub instances: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
