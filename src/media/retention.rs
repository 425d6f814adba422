//! Media past `media.retention_days`: rows deleted, and each file once no
//! row names its hash any more (content-addressed files may be shared).

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use entity::inbound_media::{self, Column};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::Media;

impl Media {
    /// Deletes expired rows and their unreferenced files; returns how many
    /// rows went.
    pub async fn purge(&self) -> Result<u64, DbErr> {
        let days = self.0.settings.retention_days;
        if days == 0 {
            return Ok(0);
        }
        let before = Utc::now() - Duration::days(days.min(36_500) as i64);
        let db = &self.0.db;
        let hashes: BTreeSet<String> = inbound_media::Entity::find()
            .select_only()
            .column(Column::StoredHash)
            .filter(Column::CreatedAt.lt(before))
            .filter(Column::StoredHash.is_not_null())
            .into_tuple::<Option<String>>()
            .all(db)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let deleted = inbound_media::Entity::delete_many()
            .filter(Column::CreatedAt.lt(before))
            .exec(db)
            .await?
            .rows_affected;
        for hash in hashes {
            let still_used = inbound_media::Entity::find()
                .filter(Column::StoredHash.eq(hash.as_str()))
                .one(db)
                .await?
                .is_some();
            if still_used {
                continue;
            }
            if let Err(e) = self.0.store.delete(&hash).await {
                tracing::warn!(error = %e, "could not delete an expired media file");
            }
        }
        Ok(deleted)
    }
}
