//! Scoped API keys in the `api_keys` table. A key is shown once, at
//! creation; the table keeps its prefix (to find the row and to show in
//! lists) and the SHA-256 of the whole key, compared in constant time.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::api_keys::{ActiveModel, Column, Entity, Model};
use ring::rand::{SecureRandom, SystemRandom};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{Grant, Scope};

const KEY_PREFIX: &str = "wak_";
/// `wak_` and 64 hex digits (256 random bits).
const KEY_LEN: usize = KEY_PREFIX.len() + 64;
/// `wak_` and the first 12 hex digits: 48 bits, unique per table.
const SHOWN_LEN: usize = KEY_PREFIX.len() + 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the system random generator failed")]
    Random,
    #[error("instance {0} not found")]
    UnknownInstance(Uuid),
    #[error("key {0} not found")]
    NotFound(Uuid),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A key as lists show it: never the key itself.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: Option<String>,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub instances: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A key just made: the only time its secret exists outside its holder.
pub struct NewKey {
    pub info: KeyInfo,
    pub key: String,
}

fn digest_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_key() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Random)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{KEY_PREFIX}{hex}"))
}

fn info(row: Model) -> KeyInfo {
    let scopes = serde_json::from_value::<Vec<String>>(row.scopes)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Scope::parse(s))
        .collect();
    let instances = serde_json::from_value(row.instances).unwrap_or_default();
    KeyInfo {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        scopes,
        instances,
        created_at: row.created_at,
    }
}

/// Makes a key for `instances` (each must exist) with `scopes`.
pub async fn create(
    db: &DatabaseConnection,
    name: Option<String>,
    instances: &[Uuid],
    scopes: &[Scope],
) -> Result<NewKey, KeyError> {
    for id in instances {
        if entity::instances::Entity::find_by_id(*id)
            .one(db)
            .await?
            .is_none()
        {
            return Err(KeyError::UnknownInstance(*id));
        }
    }
    let mut scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    scope_names.sort_unstable();
    scope_names.dedup();
    let mut ids: Vec<Uuid> = instances.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let key = random_key()?;
    let row = ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        prefix: Set(key[..SHOWN_LEN].to_owned()),
        digest: Set(digest_hex(&key)),
        scopes: Set(serde_json::json!(scope_names)),
        instances: Set(serde_json::json!(ids)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(NewKey {
        info: info(row),
        key,
    })
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<KeyInfo>, DbErr> {
    Ok(Entity::find()
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(info)
        .collect())
}

/// Revokes a key: it stops working with the next request.
pub async fn revoke(db: &DatabaseConnection, id: Uuid) -> Result<(), KeyError> {
    let done = Entity::delete_by_id(id).exec(db).await?;
    if done.rows_affected == 0 {
        return Err(KeyError::NotFound(id));
    }
    Ok(())
}

/// Whether the key is still there (not revoked).
pub async fn exists(db: &DatabaseConnection, id: Uuid) -> Result<bool, DbErr> {
    Ok(Entity::find_by_id(id).one(db).await?.is_some())
}

/// The grant of a presented key, if it is one of ours.
pub async fn find(db: &DatabaseConnection, presented: &str) -> Result<Option<Grant>, DbErr> {
    if presented.len() != KEY_LEN || !presented.starts_with(KEY_PREFIX) || !presented.is_ascii() {
        return Ok(None);
    }
    let Some(row) = Entity::find()
        .filter(Column::Prefix.eq(&presented[..SHOWN_LEN]))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let matches: bool = digest_hex(presented)
        .as_bytes()
        .ct_eq(row.digest.as_bytes())
        .into();
    if !matches {
        return Ok(None);
    }
    let info = info(row);
    Ok(Some(Grant {
        key_id: info.id,
        scopes: info.scopes.into_iter().collect::<HashSet<_>>(),
        instances: info.instances.into_iter().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let (a, b) = (random_key().unwrap(), random_key().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_LEN);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(digest_hex(&a).len(), 64);
    }
}
