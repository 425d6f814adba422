//! `SignalStore`: identities, sessions, prekeys, signed prekeys, sender keys.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use entity::wa_kv::Column;
use sea_orm::{ColumnTrait, Condition};
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::SignalStore;

use super::SeaStore;
use super::kv::Row;

const IDENTITY: &str = "identity";
const SESSION: &str = "session";
const PREKEY: &str = "prekey";
const SIGNED_PREKEY: &str = "signed_prekey";
const SENDER_KEY: &str = "sender_key";

fn identity(bytes: Vec<u8>) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

#[async_trait]
impl SignalStore for SeaStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.kv.put_one(IDENTITY, address, &key).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let rows: Vec<Row<'_>> = identities.iter().map(|(a, k)| Row::new(a, k)).collect();
        self.kv.put(IDENTITY, &rows).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        Ok(self.kv.value(IDENTITY, address).await?.and_then(identity))
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.kv.delete(IDENTITY, address).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.kv.value(SESSION, address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.kv.put_one(SESSION, address, session).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let rows: Vec<Row<'_>> = sessions.iter().map(|(a, s)| Row::new(a, s)).collect();
        self.kv.put(SESSION, &rows).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.kv.delete(SESSION, address).await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        self.kv.exists(SESSION, address).await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // An address is `user@server` or `user:device@server`.
        let of_user = Condition::any()
            .add(Column::Key.starts_with(format!("{user}@")))
            .add(Column::Key.starts_with(format!("{user}:")));
        for space in [SESSION, IDENTITY] {
            let rows = self.kv.list_where(space, of_user.clone(), Some(1)).await?;
            if !rows.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let ids: Vec<String> = keys.iter().map(|(id, _)| id.to_string()).collect();
        let rows: Vec<Row<'_>> = keys
            .iter()
            .zip(&ids)
            .map(|((id, record), key)| Row {
                n1: Some(i64::from(*id)),
                flag: uploaded,
                ..Row::new(key, record)
            })
            .collect();
        self.kv.put(PREKEY, &rows).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self
            .kv
            .value(PREKEY, &id.to_string())
            .await?
            .map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let keys: Vec<String> = ids.iter().map(u32::to_string).collect();
        let mut found: std::collections::HashMap<String, Vec<u8>> = self
            .kv
            .get_many(PREKEY, &keys)
            .await?
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        // In the order asked, skipping the missing, as the trait documents.
        Ok(ids
            .iter()
            .zip(&keys)
            .filter_map(|(id, key)| found.remove(key).map(|v| (*id, Bytes::from(v))))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let keys: Vec<String> = ids.iter().map(u32::to_string).collect();
        self.kv.set_flag(PREKEY, &keys, true).await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.kv.delete(PREKEY, &id.to_string()).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        Ok(self
            .kv
            .max_n1(PREKEY)
            .await?
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        let key = id.to_string();
        let row = Row {
            n1: Some(i64::from(id)),
            ..Row::new(&key, record)
        };
        self.kv.put(SIGNED_PREKEY, &[row]).await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.kv.value(SIGNED_PREKEY, &id.to_string()).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self
            .kv
            .list(SIGNED_PREKEY)
            .await?
            .into_iter()
            .filter_map(|e| Some((e.key.parse().ok()?, e.value)))
            .collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.kv.delete(SIGNED_PREKEY, &id.to_string()).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.kv.put_one(SENDER_KEY, address, record).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let rows: Vec<Row<'_>> = sender_keys.iter().map(|(a, r)| Row::new(a, r)).collect();
        self.kv.put(SENDER_KEY, &rows).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.kv.value(SENDER_KEY, address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.kv.delete(SENDER_KEY, address).await
    }
}
