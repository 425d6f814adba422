//! The keyed table under every trait: put, get, delete and scans of one
//! instance's rows in one space.

use entity::wa_kv::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;
use whatsapp_rust::wacore::store::error::StoreError;

use super::{db_error, sealing_error};
use crate::sealing::{Context, Keyring};

/// A row to write.
pub struct Row<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    pub n1: Option<i64>,
    pub n2: Option<i64>,
    pub flag: bool,
}

impl<'a> Row<'a> {
    pub fn new(key: &'a str, value: &'a [u8]) -> Self {
        Self {
            key,
            value,
            n1: None,
            n2: None,
            flag: false,
        }
    }
}

/// A row read back, value opened.
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub n1: Option<i64>,
    pub n2: Option<i64>,
    pub flag: bool,
}

#[derive(Clone)]
pub struct Kv {
    pub db: DatabaseConnection,
    pub instance_id: Uuid,
    /// Seals every value on the way in and opens it on the way out; the
    /// keys, spaces and numbers stay plain so the store can query them.
    pub keyring: Keyring,
}

type Result<T> = std::result::Result<T, StoreError>;

impl Kv {
    pub fn new(db: DatabaseConnection, instance_id: Uuid, keyring: Keyring) -> Self {
        Self {
            db,
            instance_id,
            keyring,
        }
    }

    fn entry(&self, m: Model) -> Result<Entry> {
        let ctx = Context::kv(self.instance_id, &m.space, &m.key);
        Ok(Entry {
            value: self.keyring.open(m.value, &ctx).map_err(sealing_error)?,
            key: m.key,
            n1: m.n1,
            n2: m.n2,
            flag: m.flag,
        })
    }

    fn entries(&self, rows: Vec<Model>) -> Result<Vec<Entry>> {
        rows.into_iter().map(|m| self.entry(m)).collect()
    }

    fn mine(&self, space: &str) -> Condition {
        Condition::all()
            .add(Column::InstanceId.eq(self.instance_id))
            .add(Column::Space.eq(space))
    }

    fn active(&self, space: &str, row: &Row<'_>) -> Result<ActiveModel> {
        let ctx = Context::kv(self.instance_id, space, row.key);
        Ok(ActiveModel {
            instance_id: Set(self.instance_id),
            space: Set(space.to_owned()),
            key: Set(row.key.to_owned()),
            value: Set(self.keyring.seal(row.value, &ctx).map_err(sealing_error)?),
            n1: Set(row.n1),
            n2: Set(row.n2),
            flag: Set(row.flag),
        })
    }

    /// Inserts or replaces rows, on `conn` (a transaction, or the pool).
    pub async fn put_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        space: &str,
        rows: &[Row<'_>],
    ) -> Result<()> {
        // One statement naming a key twice fails on PostgreSQL ("ON CONFLICT
        // DO UPDATE command cannot affect row a second time") where SQLite
        // keeps the last: keep the last here for both. Sorted, so concurrent
        // writers of overlapping keys lock them in one order.
        let mut last: std::collections::BTreeMap<&str, &Row<'_>> = Default::default();
        for r in rows {
            last.insert(r.key, r);
        }
        let rows: Vec<&Row<'_>> = last.into_values().collect();
        // Bounded batches keep each statement under the backends' parameter limits.
        for chunk in rows.chunks(200) {
            let models = chunk
                .iter()
                .map(|r| self.active(space, r))
                .collect::<Result<Vec<_>>>()?;
            Entity::insert_many(models)
                .on_conflict(
                    OnConflict::columns([Column::InstanceId, Column::Space, Column::Key])
                        .update_columns([Column::Value, Column::N1, Column::N2, Column::Flag])
                        .to_owned(),
                )
                .exec_without_returning(conn)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    pub async fn put(&self, space: &str, rows: &[Row<'_>]) -> Result<()> {
        self.put_on(&self.db, space, rows).await
    }

    pub async fn put_one(&self, space: &str, key: &str, value: &[u8]) -> Result<()> {
        self.put(space, &[Row::new(key, value)]).await
    }

    pub async fn get_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        space: &str,
        key: &str,
    ) -> Result<Option<Entry>> {
        Entity::find()
            .filter(self.mine(space).add(Column::Key.eq(key)))
            .one(conn)
            .await
            .map_err(db_error)?
            .map(|m| self.entry(m))
            .transpose()
    }

    pub async fn get(&self, space: &str, key: &str) -> Result<Option<Entry>> {
        self.get_on(&self.db, space, key).await
    }

    pub async fn value(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(space, key).await?.map(|e| e.value))
    }

    pub async fn get_many(&self, space: &str, keys: &[String]) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(200) {
            let rows = Entity::find()
                .filter(
                    self.mine(space)
                        .add(Column::Key.is_in(chunk.iter().cloned())),
                )
                .all(&self.db)
                .await
                .map_err(db_error)?;
            out.extend(self.entries(rows)?);
        }
        Ok(out)
    }

    pub async fn exists(&self, space: &str, key: &str) -> Result<bool> {
        let found = Entity::find()
            .select_only()
            .column(Column::Key)
            .filter(self.mine(space).add(Column::Key.eq(key)))
            .into_tuple::<String>()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(found.is_some())
    }

    /// Every row of a space, by `n1` then key.
    pub async fn list(&self, space: &str) -> Result<Vec<Entry>> {
        self.entries(
            Entity::find()
                .filter(self.mine(space))
                .order_by_asc(Column::N1)
                .order_by_asc(Column::Key)
                .all(&self.db)
                .await
                .map_err(db_error)?,
        )
    }

    /// Up to `limit` rows of a space that `extra` selects.
    pub async fn list_where(
        &self,
        space: &str,
        extra: Condition,
        limit: Option<u64>,
    ) -> Result<Vec<Entry>> {
        self.entries(
            Entity::find()
                .filter(self.mine(space).add(extra))
                .limit(limit)
                .all(&self.db)
                .await
                .map_err(db_error)?,
        )
    }

    pub async fn delete_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        space: &str,
        keys: &[String],
    ) -> Result<u64> {
        let mut deleted = 0;
        for chunk in keys.chunks(200) {
            deleted += Entity::delete_many()
                .filter(
                    self.mine(space)
                        .add(Column::Key.is_in(chunk.iter().cloned())),
                )
                .exec(conn)
                .await
                .map_err(db_error)?
                .rows_affected;
        }
        Ok(deleted)
    }

    pub async fn delete(&self, space: &str, key: &str) -> Result<()> {
        self.delete_on(&self.db, space, &[key.to_owned()]).await?;
        Ok(())
    }

    /// Deletes the rows of a space that `extra` selects; all of them for
    /// an empty condition.
    pub async fn delete_where(&self, space: &str, extra: Condition) -> Result<u64> {
        Ok(Entity::delete_many()
            .filter(self.mine(space).add(extra))
            .exec(&self.db)
            .await
            .map_err(db_error)?
            .rows_affected)
    }

    /// Removes a row and returns its value, once: of concurrent callers
    /// only the one whose delete matched the stored bytes gets it.
    pub async fn take(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let Some(row) = Entity::find()
            .filter(self.mine(space).add(Column::Key.eq(key)))
            .one(&self.db)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        // Opened before the delete: a value that cannot be opened stays.
        let stored = row.value.clone();
        let value = self.entry(row)?.value;
        let deleted = Entity::delete_many()
            .filter(
                self.mine(space)
                    .add(Column::Key.eq(key))
                    .add(Column::Value.eq(stored)),
            )
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok((deleted.rows_affected == 1).then_some(value))
    }

    pub async fn max_n1(&self, space: &str) -> Result<Option<i64>> {
        let max: Option<Option<i64>> = Entity::find()
            .select_only()
            .expr(sea_orm::sea_query::Func::max(Expr::col(Column::N1)))
            .filter(self.mine(space))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        Ok(max.flatten())
    }

    /// Sets the flag on the given keys (never creating rows).
    pub async fn set_flag(&self, space: &str, keys: &[String], flag: bool) -> Result<()> {
        for chunk in keys.chunks(200) {
            Entity::update_many()
                .col_expr(Column::Flag, Expr::value(flag))
                .filter(
                    self.mine(space)
                        .add(Column::Key.is_in(chunk.iter().cloned())),
                )
                .exec(&self.db)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }
}
