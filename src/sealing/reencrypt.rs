//! `wagate reencrypt`: re-seals every stored secret with the current key,
//! so a previous key can be retired (or plain values from before a key was
//! set get sealed).
//!
//! Rows are walked in primary-key order, a batch per write transaction.
//! Each rewrite is conditional on the stored bytes being unchanged, so a
//! running server that wrote a row in the meantime (with its own current
//! key) is never overwritten with an older value.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::SealError;
use super::context::{Context, WebhookSecret};
use super::keyring::{Keyring, Standing};

#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    #[error(
        "refusing to re-encrypt: no encryption_key is set. Set WAGATE_ENCRYPTION_KEY to the \
         new key and list the keys that sealed the stored values in \
         WAGATE_PREVIOUS_ENCRYPTION_KEYS"
    )]
    NoKey,
    #[error("{table} row {row}: {source}")]
    Open {
        table: &'static str,
        row: String,
        source: SealError,
    },
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What happened to one table's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub table: &'static str,
    /// Values seen.
    pub examined: u64,
    /// Plain or sealed with another key, now sealed with the current key.
    pub resealed: u64,
    /// Already sealed with the current key.
    pub current: u64,
    /// Changed by someone else between read and rewrite (left as written).
    pub changed_meanwhile: u64,
    /// Expired previous webhook secrets that no key here opens: removed.
    pub dropped: u64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} examined, {} re-encrypted, {} already current",
            self.table, self.examined, self.resealed, self.current
        )?;
        if self.changed_meanwhile > 0 {
            write!(f, ", {} changed meanwhile", self.changed_meanwhile)?;
        }
        if self.dropped > 0 {
            write!(f, ", {} expired previous secrets dropped", self.dropped)?;
        }
        Ok(())
    }
}

/// Rows per transaction: small enough that a running server's writers
/// never wait long for the lock.
const BATCH: u64 = 500;

/// The `wagate reencrypt` command: migrates, re-seals, prints the counts.
pub async fn command(settings: &crate::config::Settings) -> Result<(), crate::app::AppError> {
    let keyring = Keyring::from_settings(settings)?;
    let refuse = |e| crate::app::AppError::Reencrypt(Box::new(e));
    // Before touching the database: nothing to do without a key.
    if !keyring.seals() {
        return Err(refuse(ReencryptError::NoKey));
    }
    let db = crate::db::connect(settings).await?;
    crate::db::migrate(&db).await?;
    let counts = reencrypt(&db, &keyring, BATCH).await;
    db.close().await.ok();
    let counts = counts.map_err(refuse)?;
    println!(
        "re-encrypted with key {}",
        keyring.current_key_id().unwrap_or_default()
    );
    for c in counts {
        println!("  {c}");
    }
    Ok(())
}

/// Re-seals `wa_devices`, `wa_kv` and the webhook secrets and sink credentials, `batch` rows per
/// transaction. Returns one [`Counts`] per table.
pub async fn reencrypt(
    db: &DatabaseConnection,
    keyring: &Keyring,
    batch: u64,
) -> Result<Vec<Counts>, ReencryptError> {
    if !keyring.seals() {
        return Err(ReencryptError::NoKey);
    }
    let batch = batch.max(1);
    Ok(vec![
        devices(db, keyring, batch).await?,
        kv(db, keyring, batch).await?,
        webhooks(db, keyring, batch).await?,
    ])
}

/// The value re-sealed for `ctx`, or `None` when it already is current.
fn reseal(keyring: &Keyring, stored: &[u8], ctx: &Context) -> Result<Option<Vec<u8>>, SealError> {
    if keyring.standing(stored)? == Standing::Current {
        // Opened anyway, so a forged or moved value is reported, not kept.
        keyring.open(stored.to_vec(), ctx)?;
        return Ok(None);
    }
    let plain = keyring.open(stored.to_vec(), ctx)?;
    keyring.seal(&plain, ctx).map(Some)
}

async fn devices(
    db: &DatabaseConnection,
    keyring: &Keyring,
    batch: u64,
) -> Result<Counts, ReencryptError> {
    use entity::wa_devices::{Column, Entity};
    let mut counts = Counts {
        table: "wa_devices",
        ..Default::default()
    };
    let mut after: Option<Uuid> = None;
    loop {
        let txn = crate::db::begin_write(db).await?;
        let mut query = Entity::find().order_by_asc(Column::InstanceId).limit(batch);
        if let Some(last) = after {
            query = query.filter(Column::InstanceId.gt(last));
        }
        let rows = query.all(&txn).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.instance_id);
        for row in rows {
            counts.examined += 1;
            let ctx = Context::device(row.instance_id);
            let fresh =
                reseal(keyring, &row.data, &ctx).map_err(|source| ReencryptError::Open {
                    table: "wa_devices",
                    row: format!("of instance {}", row.instance_id),
                    source,
                })?;
            let Some(fresh) = fresh else {
                counts.current += 1;
                continue;
            };
            let res = Entity::update_many()
                .col_expr(Column::Data, Expr::value(fresh))
                .filter(Column::InstanceId.eq(row.instance_id))
                .filter(Column::Data.eq(row.data))
                .exec(&txn)
                .await?;
            tally(&mut counts, res.rows_affected);
        }
        txn.commit().await?;
    }
    Ok(counts)
}

async fn kv(
    db: &DatabaseConnection,
    keyring: &Keyring,
    batch: u64,
) -> Result<Counts, ReencryptError> {
    use entity::wa_kv::{Column, Entity};
    let mut counts = Counts {
        table: "wa_kv",
        ..Default::default()
    };
    let mut after: Option<(Uuid, String, String)> = None;
    loop {
        let txn = crate::db::begin_write(db).await?;
        let mut query = Entity::find()
            .order_by_asc(Column::InstanceId)
            .order_by_asc(Column::Space)
            .order_by_asc(Column::Key)
            .limit(batch);
        if let Some((id, space, key)) = &after {
            // Rows after the last one in (instance, space, key) order.
            query = query.filter(
                Condition::any()
                    .add(Column::InstanceId.gt(*id))
                    .add(
                        Condition::all()
                            .add(Column::InstanceId.eq(*id))
                            .add(Column::Space.gt(space.clone())),
                    )
                    .add(
                        Condition::all()
                            .add(Column::InstanceId.eq(*id))
                            .add(Column::Space.eq(space.clone()))
                            .add(Column::Key.gt(key.clone())),
                    ),
            );
        }
        let rows = query.all(&txn).await?;
        let Some(last) = rows.last() else { break };
        after = Some((last.instance_id, last.space.clone(), last.key.clone()));
        for row in rows {
            counts.examined += 1;
            let ctx = Context::kv(row.instance_id, &row.space, &row.key);
            let fresh = reseal(keyring, &row.value, &ctx).map_err(|source| {
                ReencryptError::Open {
                    table: "wa_kv",
                    // The space names the kind of record; keys (addresses) stay out.
                    row: format!("of instance {} in space {}", row.instance_id, row.space),
                    source,
                }
            })?;
            let Some(fresh) = fresh else {
                counts.current += 1;
                continue;
            };
            let res = Entity::update_many()
                .col_expr(Column::Value, Expr::value(fresh))
                .filter(Column::InstanceId.eq(row.instance_id))
                .filter(Column::Space.eq(row.space))
                .filter(Column::Key.eq(row.key))
                .filter(Column::Value.eq(row.value))
                .exec(&txn)
                .await?;
            tally(&mut counts, res.rows_affected);
        }
        txn.commit().await?;
    }
    Ok(counts)
}

async fn webhooks(
    db: &DatabaseConnection,
    keyring: &Keyring,
    batch: u64,
) -> Result<Counts, ReencryptError> {
    use entity::webhooks::{Column, Entity};
    let mut counts = Counts {
        table: "webhooks",
        ..Default::default()
    };
    let mut after: Option<Uuid> = None;
    loop {
        let txn = crate::db::begin_write(db).await?;
        let mut query = Entity::find().order_by_asc(Column::Id).limit(batch);
        if let Some(last) = after {
            query = query.filter(Column::Id.gt(last));
        }
        let rows = query.all(&txn).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in rows {
            let open_error = |source| ReencryptError::Open {
                table: "webhooks",
                row: row.id.to_string(),
                source,
            };
            // Counted per value: the secret, and the previous one if any.
            let mut update = Entity::update_many()
                .filter(Column::Id.eq(row.id))
                .filter(Column::Secret.eq(row.secret.clone()));
            let mut pending = 0;
            let mut drop_previous = false;
            counts.examined += 1;
            let ctx = Context::webhook(row.id, WebhookSecret::Current);
            match reseal_text(keyring, &row.secret, &ctx).map_err(open_error)? {
                Some(fresh) => {
                    pending += 1;
                    update = update.col_expr(Column::Secret, Expr::value(fresh));
                }
                None => counts.current += 1,
            }
            if let Some(previous) = &row.previous_secret {
                counts.examined += 1;
                let ctx = Context::webhook(row.id, WebhookSecret::Previous);
                let expired = row
                    .previous_secret_expires_at
                    .is_none_or(|t| t <= Utc::now());
                let fresh = match reseal_text(keyring, previous, &ctx) {
                    Ok(None) => {
                        counts.current += 1;
                        None
                    }
                    Ok(Some(fresh)) => {
                        pending += 1;
                        Some(Some(fresh))
                    }
                    // An expired previous secret never signs again: one that
                    // no configured key opens is removed rather than kept.
                    Err(SealError::UnknownKey(_)) if expired => {
                        drop_previous = true;
                        Some(None)
                    }
                    Err(e) => return Err(open_error(e)),
                };
                if let Some(value) = fresh {
                    update = update
                        .col_expr(Column::PreviousSecret, Expr::value(value))
                        .filter(Column::PreviousSecret.eq(previous.clone()));
                }
            }
            if let Some(credentials) = &row.credentials {
                counts.examined += 1;
                let ctx = Context::webhook(row.id, WebhookSecret::Credentials);
                match reseal_text(keyring, credentials, &ctx).map_err(open_error)? {
                    Some(fresh) => {
                        pending += 1;
                        update = update
                            .col_expr(Column::Credentials, Expr::value(fresh))
                            .filter(Column::Credentials.eq(credentials.clone()));
                    }
                    None => counts.current += 1,
                }
            }
            if pending == 0 && !drop_previous {
                continue;
            }
            let res = update.exec(&txn).await?;
            if res.rows_affected == 1 {
                counts.resealed += pending;
                counts.dropped += u64::from(drop_previous);
            } else {
                counts.changed_meanwhile += pending;
            }
        }
        txn.commit().await?;
    }
    Ok(counts)
}

fn reseal_text(
    keyring: &Keyring,
    stored: &str,
    ctx: &Context,
) -> Result<Option<String>, SealError> {
    if keyring.text_standing(stored)? == Standing::Current {
        keyring.open_text(stored, ctx)?;
        return Ok(None);
    }
    let plain = keyring.open_text(stored, ctx)?;
    keyring.seal_text(&plain, ctx).map(Some)
}

/// Counts one conditional rewrite: it matched its row, or the row changed.
fn tally(counts: &mut Counts, rows_affected: u64) {
    if rows_affected == 1 {
        counts.resealed += 1;
    } else {
        counts.changed_meanwhile += 1;
    }
}
