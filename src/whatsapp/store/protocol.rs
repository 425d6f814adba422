//! `ProtocolStore`: sender-key device tracking, the LID<->phone mapping,
//! base keys, device lists, group metadata, tc tokens, sent messages kept
//! for retries, and the pending inbound buffer.

use async_trait::async_trait;
use entity::wa_kv::Column;
use sea_orm::{ColumnTrait, Condition};
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use super::kv::Row;
use super::{SeaStore, db_error, from_json, key, to_json};

const SENDER_KEY_DEVICE: &str = "sk_device";
const LID: &str = "lid_map";
const PN: &str = "pn_map";
const BASE_KEY: &str = "base_key";
const DEVICES: &str = "device_list";
const GROUP: &str = "group_meta";
const TC_TOKEN: &str = "tc_token";
const SENT: &str = "sent_message";
const PENDING: &str = "pending_inbound";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `group␟device`, split back.
fn group_device(k: &str) -> Option<(&str, &str)> {
    k.split_once('\u{1f}')
}

#[async_trait]
impl ProtocolStore for SeaStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let prefix = key(&[group_jid, ""]);
        let rows = self
            .kv
            .list_where(
                SENDER_KEY_DEVICE,
                Condition::all().add(Column::Key.starts_with(prefix)),
                None,
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|e| {
                let (group, device) = group_device(&e.key)?;
                (group == group_jid).then(|| (device.to_owned(), e.flag))
            })
            .collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let keys: Vec<String> = entries.iter().map(|(d, _)| key(&[group_jid, d])).collect();
        let rows: Vec<Row<'_>> = entries
            .iter()
            .zip(&keys)
            .map(|((_, has), k)| Row {
                flag: *has,
                ..Row::new(k, &[])
            })
            .collect();
        self.kv.put(SENDER_KEY_DEVICE, &rows).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let keys: Vec<String> = self
            .get_sender_key_devices(group_jid)
            .await?
            .into_iter()
            .map(|(d, _)| key(&[group_jid, &d]))
            .collect();
        self.kv
            .delete_on(&self.kv.db, SENDER_KEY_DEVICE, &keys)
            .await?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = self
            .kv
            .list(SENDER_KEY_DEVICE)
            .await?
            .into_iter()
            .filter(|e| group_device(&e.key).is_some_and(|(_, d)| device_jids.contains(&d)))
            .map(|e| e.key)
            .collect();
        self.kv
            .delete_on(&self.kv.db, SENDER_KEY_DEVICE, &keys)
            .await?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.kv
            .delete_where(SENDER_KEY_DEVICE, Condition::all())
            .await?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        match self.kv.value(LID, lid).await? {
            Some(bytes) => Ok(Some(from_json(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        match self.kv.value(PN, phone).await? {
            Some(lid) => self.get_lid_mapping(&String::from_utf8_lossy(&lid)).await,
            None => Ok(None),
        }
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        // Both directions change together, or not at all.
        let txn = crate::db::begin_write(&self.kv.db)
            .await
            .map_err(db_error)?;
        for entry in entries {
            // A LID that moved to another number leaves no stale reverse entry.
            if let Some(old) = self.kv.get_on(&txn, LID, &entry.lid).await? {
                let old: LidPnMappingEntry = from_json(&old.value)?;
                if old.phone_number != entry.phone_number {
                    self.kv
                        .delete_on(&txn, PN, std::slice::from_ref(&old.phone_number))
                        .await?;
                }
            }
            let value = to_json(entry)?;
            self.kv
                .put_on(&txn, LID, &[Row::new(&entry.lid, &value)])
                .await?;
            self.kv
                .put_on(
                    &txn,
                    PN,
                    &[Row::new(&entry.phone_number, entry.lid.as_bytes())],
                )
                .await?;
        }
        txn.commit().await.map_err(db_error)
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.kv
            .list(LID)
            .await?
            .iter()
            .map(|e| from_json(&e.value))
            .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.kv
            .put_one(BASE_KEY, &key(&[address, message_id]), base_key)
            .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .kv
            .value(BASE_KEY, &key(&[address, message_id]))
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.kv.delete(BASE_KEY, &key(&[address, message_id])).await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let values = records.iter().map(to_json).collect::<Result<Vec<_>>>()?;
        // The last record for a user wins, as with repeated single updates.
        let mut latest: std::collections::HashMap<&str, &[u8]> = Default::default();
        for (r, v) in records.iter().zip(&values) {
            latest.insert(r.user.as_str(), v);
        }
        let rows: Vec<Row<'_>> = latest.into_iter().map(|(u, v)| Row::new(u, v)).collect();
        self.kv.put(DEVICES, &rows).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        match self.kv.value(DEVICES, user).await? {
            Some(bytes) => Ok(Some(from_json(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.kv.delete(DEVICES, user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.kv.value(GROUP, group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.kv.put_one(GROUP, group_jid, blob).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.kv.delete(GROUP, group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        Ok(self.kv.get(TC_TOKEN, jid).await?.map(|e| TcTokenEntry {
            token: e.value,
            token_timestamp: e.n1.unwrap_or(0),
            sender_timestamp: e.n2,
        }))
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let row = Row {
            n1: Some(entry.token_timestamp),
            n2: entry.sender_timestamp,
            // Whether a received token is held: expiry keys on it.
            flag: !entry.token.is_empty(),
            ..Row::new(jid, &entry.token)
        };
        self.kv.put(TC_TOKEN, &[row]).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.kv.delete(TC_TOKEN, jid).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        Ok(self
            .kv
            .list(TC_TOKEN)
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        // A row goes only when both its token and its sender bucket are stale.
        let token_stale = Condition::any()
            .add(Column::Flag.eq(false))
            .add(Column::N1.lt(token_cutoff));
        let sender_stale = Condition::any()
            .add(Column::N2.is_null())
            .add(Column::N2.lt(sender_cutoff));
        let n = self
            .kv
            .delete_where(
                TC_TOKEN,
                Condition::all().add(token_stale).add(sender_stale),
            )
            .await?;
        Ok(count(n))
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let k = key(&[chat_jid, message_id]);
        let row = Row {
            n1: Some(now()),
            ..Row::new(&k, payload)
        };
        self.kv.put(SENT, &[row]).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.kv.take(SENT, &key(&[chat_jid, message_id])).await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let n = self
            .kv
            .delete_where(SENT, Condition::all().add(Column::N1.lt(cutoff_timestamp)))
            .await?;
        Ok(count(n))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.store_pending_inbound_batch(&[PendingInboundRow {
            chat,
            sender,
            id,
            message,
        }])
        .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let at = now();
        let keys: Vec<String> = rows
            .iter()
            .map(|r| key(&[r.chat, r.sender, r.id]))
            .collect();
        let rows: Vec<Row<'_>> = rows
            .iter()
            .zip(&keys)
            .map(|(r, k)| Row {
                n1: Some(at),
                ..Row::new(k, r.message)
            })
            .collect();
        self.kv.put(PENDING, &rows).await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.kv.value(PENDING, &key(&[chat, sender, id])).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.kv.delete(PENDING, &key(&[chat, sender, id])).await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| key(&[k.chat, k.sender, k.id]))
            .collect();
        self.kv.delete_on(&self.kv.db, PENDING, &keys).await?;
        Ok(())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let n = self
            .kv
            .delete_where(
                PENDING,
                Condition::all().add(Column::N1.lt(cutoff_timestamp)),
            )
            .await?;
        Ok(count(n))
    }
}
