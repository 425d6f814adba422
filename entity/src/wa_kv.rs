use sea_orm::entity::prelude::*;

/// Everything else whatsapp-rust stores for one instance, by space and key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wa_kv")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub space: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub value: Vec<u8>,
    /// A number the space queries or orders by (id, timestamp, expiry).
    pub n1: Option<i64>,
    pub n2: Option<i64>,
    pub flag: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
