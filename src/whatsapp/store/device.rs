//! `DeviceStore`: the device itself, one serialised row per instance.

use async_trait::async_trait;
use entity::wa_devices::{ActiveModel, Column, Entity};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::DeviceStore;

use super::{SeaStore, db_error, from_json, sealing_error, to_json};
use crate::sealing::Context;

#[async_trait]
impl DeviceStore for SeaStore {
    async fn save(&self, device: &Device) -> Result<()> {
        // Saves take turns and write the state as it is now, so an old copy
        // never lands after a newer one.
        let _turn = self.newest.turn().await;
        let newest = self.newest.current();
        let device = newest.as_ref().unwrap_or(device);
        let ctx = Context::device(self.kv.instance_id);
        let data = self
            .kv
            .keyring
            .seal(&to_json(device)?, &ctx)
            .map_err(sealing_error)?;
        let row = ActiveModel {
            instance_id: Set(self.kv.instance_id),
            data: Set(data),
        };
        Entity::insert(row)
            .on_conflict(
                OnConflict::column(Column::InstanceId)
                    .update_column(Column::Data)
                    .to_owned(),
            )
            .exec_without_returning(&self.kv.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn load(&self) -> Result<Option<Device>> {
        match Entity::find_by_id(self.kv.instance_id)
            .one(&self.kv.db)
            .await
            .map_err(db_error)?
        {
            Some(row) => {
                let ctx = Context::device(self.kv.instance_id);
                let data = self
                    .kv
                    .keyring
                    .open(row.data, &ctx)
                    .map_err(sealing_error)?;
                Ok(Some(from_json(&data)?))
            }
            None => Ok(None),
        }
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.load_row_exists().await?)
    }

    async fn create(&self) -> Result<i32> {
        if !self.load_row_exists().await? {
            self.save(&Device::new()).await?;
        }
        // One device per instance; the number is not used to address it.
        Ok(1)
    }
}

impl SeaStore {
    async fn load_row_exists(&self) -> Result<bool> {
        Ok(Entity::find_by_id(self.kv.instance_id)
            .one(&self.kv.db)
            .await
            .map_err(db_error)?
            .is_some())
    }
}
