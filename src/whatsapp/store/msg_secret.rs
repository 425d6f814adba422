//! `MsgSecretStore`: message secrets (polls, reactions, edits), merged as
//! the trait's helpers say.

use std::collections::HashMap;

use async_trait::async_trait;
use entity::wa_kv::Column;
use sea_orm::{ColumnTrait, Condition};
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use super::kv::Row;
use super::{SeaStore, db_error, key};

const MSG_SECRET: &str = "msg_secret";

#[async_trait]
impl MsgSecretStore for SeaStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        // Read-merge-write in one write transaction, so concurrent batches
        // cannot lose each other's expiry; a key repeated within the batch
        // merges too (one statement may not touch a row twice).
        let txn = crate::db::begin_write(&self.kv.db)
            .await
            .map_err(db_error)?;
        let mut merged: HashMap<String, ([u8; 32], i64, i64)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for entry in &entries {
            let k = key(&[&entry.chat, &entry.sender, &entry.msg_id]);
            let previous = match merged.get(&k) {
                Some(&(_, expires_at, message_ts)) => Some((expires_at, message_ts)),
                None => self
                    .kv
                    .get_on(&txn, MSG_SECRET, &k)
                    .await?
                    .map(|old| (old.n1.unwrap_or(0), old.n2.unwrap_or(0))),
            };
            let (expires_at, message_ts) = match previous {
                Some((e, m)) => (
                    merge_msg_secret_expiry(e, entry.expires_at),
                    merge_msg_secret_message_ts(m, entry.message_ts),
                ),
                None => (entry.expires_at, entry.message_ts),
            };
            if !merged.contains_key(&k) {
                order.push(k.clone());
            }
            merged.insert(k, (entry.secret, expires_at, message_ts));
        }
        let rows: Vec<Row<'_>> = order
            .iter()
            .filter_map(|k| {
                let (secret, expires_at, message_ts) = merged.get(k)?;
                Some(Row {
                    n1: Some(*expires_at),
                    n2: Some(*message_ts),
                    ..Row::new(k, secret)
                })
            })
            .collect();
        self.kv.put_on(&txn, MSG_SECRET, &rows).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.kv
            .value(MSG_SECRET, &key(&[chat, sender, msg_id]))
            .await
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        Ok(self
            .kv
            .get(MSG_SECRET, &key(&[chat, sender, msg_id]))
            .await?
            .map(|e| (e.value, e.n2.unwrap_or(0))))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        // Expiry 0 means "never".
        let expired = Condition::all()
            .add(Column::N1.ne(0))
            .add(Column::N1.lte(cutoff_timestamp));
        let n = self.kv.delete_where(MSG_SECRET, expired).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
