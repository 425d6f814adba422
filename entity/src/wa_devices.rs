use sea_orm::entity::prelude::*;

/// The whatsapp-rust device (identity, noise and signed keys, ids) of one
/// instance, serialised whole.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wa_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance_id: Uuid,
    pub data: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
