//! `AppSyncStore`: app-state sync keys, collection versions, mutation MACs.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::Condition;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::kv::Row;
use super::{SeaStore, from_json, hex, to_json};

const SYNC_KEY: &str = "sync_key";
const LATEST_SYNC_KEY: &str = "sync_key_latest";
const VERSION: &str = "app_version";

/// One space per collection, so clearing a collection is one statement.
fn macs(name: &str) -> String {
    format!("mac:{name}")
}

#[async_trait]
impl AppSyncStore for SeaStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        match self.kv.value(SYNC_KEY, &hex(key_id)).await? {
            Some(bytes) => Ok(Some(from_json(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let value = to_json(&key)?;
        self.kv.put_one(SYNC_KEY, &hex(key_id), &value).await?;
        self.kv.put_one(LATEST_SYNC_KEY, "", key_id).await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        match self.kv.value(VERSION, name).await? {
            Some(bytes) => from_json(&bytes),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.kv.put_one(VERSION, name, &to_json(&state)?).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let keys: Vec<String> = mutations.iter().map(|m| hex(&m.index_mac)).collect();
        let rows: Vec<Row<'_>> = mutations
            .iter()
            .zip(&keys)
            .map(|(m, key)| Row {
                n1: i64::try_from(version).ok(),
                ..Row::new(key, &m.value_mac)
            })
            .collect();
        self.kv.put(&macs(name), &rows).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.kv.value(&macs(name), &hex(index_mac)).await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let by_hex: HashMap<String, [u8; 32]> = index_macs.iter().map(|m| (hex(m), *m)).collect();
        let keys: Vec<String> = by_hex.keys().cloned().collect();
        Ok(self
            .kv
            .get_many(&macs(name), &keys)
            .await?
            .into_iter()
            .filter_map(|e| Some((*by_hex.get(&e.key)?, e.value)))
            .collect())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let keys: Vec<String> = index_macs.iter().map(|m| hex(m)).collect();
        self.kv.delete_on(&self.kv.db, &macs(name), &keys).await?;
        Ok(())
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.kv.delete_where(&macs(name), Condition::all()).await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.kv.value(LATEST_SYNC_KEY, "").await
    }
}
