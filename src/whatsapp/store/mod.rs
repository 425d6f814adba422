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
use super::device_saving::NewestDevice;
use crate::engine::EngineError;
use crate::sealing::{Keyring, SealError};

pub(crate) use kv::Kv;

/// The storage backend of one instance.
#[derive(Clone)]
pub struct SeaStore {
    kv: Kv,
    newest: Arc<NewestDevice>,
}

impl SeaStore {
    /// `keyring` seals what the store writes; an empty one stores it plain.
    pub fn new(db: DatabaseConnection, instance_id: Uuid, keyring: Keyring) -> Self {
        Self::for_session(db, instance_id, keyring, Arc::default())
    }

    /// A running client's store: device saves write `newest`'s state.
    pub fn for_session(
        db: DatabaseConnection,
        instance_id: Uuid,
        keyring: Keyring,
        newest: Arc<NewestDevice>,
    ) -> Self {
        Self {
            kv: Kv::new(db, instance_id, keyring),
            newest,
        }
    }
}

/// Every instance's store on one database.
pub struct SeaBackends {
    db: DatabaseConnection,
    keyring: Keyring,
}

impl SeaBackends {
    pub fn new(db: DatabaseConnection, keyring: Keyring) -> Self {
        Self { db, keyring }
    }
}

#[async_trait]
impl BackendSource for SeaBackends {
    fn session_backend(&self, instance_id: Uuid, newest: Arc<NewestDevice>) -> Arc<dyn Backend> {
        Arc::new(SeaStore::for_session(
            self.db.clone(),
            instance_id,
            self.keyring.clone(),
            newest,
        ))
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

/// A value that cannot be opened (unknown key, tampered or moved row) is an
/// error of the store, never bytes handed on as if they were the value.
pub(crate) fn sealing_error(e: SealError) -> StoreError {
    StoreError::Validation(format!("encryption at rest: {e}"))
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
