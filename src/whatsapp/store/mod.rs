//! whatsapp-rust's storage traits on our database (SeaORM, PostgreSQL or
//! SQLite). One [`SeaStore`] value serves one instance's device: every row
//! carries the instance id, and deleting the instance deletes them all.

mod app_sync;
mod device;
mod kv;
mod msg_secret;
mod protocol;
mod signal;

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::wacore::store::error::StoreError;

use super::BackendSource;
use crate::engine::EngineError;

pub(crate) use kv::Kv;

/// The storage backend of one instance.
#[derive(Clone)]
pub struct SeaStore {
    kv: Kv,
}

impl SeaStore {
    pub fn new(db: DatabaseConnection, instance_id: Uuid) -> Self {
        Self {
            kv: Kv::new(db, instance_id),
        }
    }
}

/// Every instance's store on one database.
pub struct SeaBackends {
    db: DatabaseConnection,
}

impl SeaBackends {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl BackendSource for SeaBackends {
    fn backend(&self, instance_id: Uuid) -> Arc<dyn Backend> {
        Arc::new(SeaStore::new(self.db.clone(), instance_id))
    }

    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError> {
        wipe_device(&self.db, instance_id)
            .await
            .map_err(|e| EngineError::Store(e.to_string()))
    }
}

/// Deletes everything one instance's device stored (after a logout).
pub async fn wipe_device(db: &DatabaseConnection, instance_id: Uuid) -> Result<(), DbErr> {
    entity::wa_kv::Entity::delete_many()
        .filter(entity::wa_kv::Column::InstanceId.eq(instance_id))
        .exec(db)
        .await?;
    entity::wa_devices::Entity::delete_many()
        .filter(entity::wa_devices::Column::InstanceId.eq(instance_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The one place key material passes on its way to and from the database;
/// encryption at rest goes here.
pub(crate) fn seal(plain: &[u8]) -> Vec<u8> {
    plain.to_vec()
}

pub(crate) fn open(stored: Vec<u8>) -> Vec<u8> {
    stored
}

pub(crate) fn db_error(e: DbErr) -> StoreError {
    StoreError::Database(Box::new(e))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Serialization(Box::new(e)))
}

/// Joins the parts of a composite key with a separator no JID or id holds.
pub(crate) fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
