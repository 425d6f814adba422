//! The statements on `instance_leases` and `cluster_leaders` (PostgreSQL).
//! Each is one statement, so concurrent nodes are settled by its row locks.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use super::{pg as stmt, secs};

/// Instances that have a session to keep connected.
const PAIRED: &str = "('online', 'disconnected')";

fn pairs(rows: Vec<sea_orm::QueryResult>) -> Result<Vec<(Uuid, i64)>, DbErr> {
    rows.iter()
        .map(|r| Ok((r.try_get("", "instance_id")?, r.try_get("", "epoch")?)))
        .collect()
}

pub enum Acquired {
    Ours(i64),
    Elsewhere(Uuid),
}

/// Takes the lease on one instance unless another node's lease is live.
/// The epoch moves on whenever the owner changes or the lease had lapsed.
pub async fn acquire(
    db: &DatabaseConnection,
    node: Uuid,
    instance: Uuid,
    lease: Duration,
) -> Result<Acquired, DbErr> {
    let sql = "INSERT INTO instance_leases (instance_id, owner_node, lease_until, epoch) \
               VALUES ($1, $2, now() + make_interval(secs => $3), 1) \
               ON CONFLICT (instance_id) DO UPDATE \
                 SET owner_node = EXCLUDED.owner_node, lease_until = EXCLUDED.lease_until, \
                     epoch = CASE WHEN instance_leases.owner_node = EXCLUDED.owner_node \
                                   AND instance_leases.lease_until >= now() \
                                  THEN instance_leases.epoch ELSE instance_leases.epoch + 1 END \
                 WHERE instance_leases.owner_node IS NULL \
                    OR instance_leases.owner_node = EXCLUDED.owner_node \
                    OR instance_leases.lease_until < now() \
               RETURNING epoch";
    let row = db
        .query_one_raw(stmt(sql, vec![instance.into(), node.into(), secs(lease)]))
        .await?;
    if let Some(row) = row {
        return Ok(Acquired::Ours(row.try_get("", "epoch")?));
    }
    let owner = db
        .query_one_raw(stmt(
            "SELECT owner_node FROM instance_leases WHERE instance_id = $1",
            vec![instance.into()],
        ))
        .await?
        .and_then(|r| r.try_get::<Option<Uuid>>("", "owner_node").ok().flatten())
        .unwrap_or_default();
    Ok(Acquired::Elsewhere(owner))
}

/// Renews every live lease of `node` in one statement; what it returns is
/// what the node still holds.
pub async fn renew(
    db: &DatabaseConnection,
    node: Uuid,
    lease: Duration,
) -> Result<Vec<(Uuid, i64)>, DbErr> {
    let sql = "UPDATE instance_leases SET lease_until = now() + make_interval(secs => $2) \
               WHERE owner_node = $1 AND lease_until > now() \
               RETURNING instance_id, epoch";
    pairs(
        db.query_all_raw(stmt(sql, vec![node.into(), secs(lease)]))
            .await?,
    )
}

/// Leases a restarted node (same stable id) left behind, taken back with
/// a new epoch.
pub async fn adopt(
    db: &DatabaseConnection,
    node: Uuid,
    lease: Duration,
) -> Result<Vec<(Uuid, i64)>, DbErr> {
    let sql = "UPDATE instance_leases \
               SET lease_until = now() + make_interval(secs => $2), epoch = epoch + 1 \
               WHERE owner_node = $1 RETURNING instance_id, epoch";
    pairs(
        db.query_all_raw(stmt(sql, vec![node.into(), secs(lease)]))
            .await?,
    )
}

/// Claims up to `limit` paired instances that no live lease covers. Rows
/// another node is claiming at the same moment are skipped, not waited for.
pub async fn claim(
    db: &DatabaseConnection,
    node: Uuid,
    lease: Duration,
    limit: usize,
) -> Result<Vec<(Uuid, i64)>, DbErr> {
    let sql = format!(
        "WITH candidates AS ( \
           SELECT i.id FROM instances i \
           LEFT JOIN instance_leases l ON l.instance_id = i.id \
           WHERE i.status IN {PAIRED} \
             AND (l.instance_id IS NULL OR l.owner_node IS NULL OR l.lease_until < now()) \
           ORDER BY i.id LIMIT $3 \
           FOR UPDATE OF i SKIP LOCKED) \
         INSERT INTO instance_leases (instance_id, owner_node, lease_until, epoch) \
         SELECT id, $1, now() + make_interval(secs => $2), 1 FROM candidates \
         ON CONFLICT (instance_id) DO UPDATE \
           SET owner_node = EXCLUDED.owner_node, lease_until = EXCLUDED.lease_until, \
               epoch = instance_leases.epoch + 1 \
           WHERE instance_leases.owner_node IS NULL OR instance_leases.lease_until < now() \
         RETURNING instance_id, epoch"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    pairs(
        db.query_all_raw(stmt(&sql, vec![node.into(), secs(lease), limit.into()]))
            .await?,
    )
}

/// Gives one lease back at once, so another node need not wait it out.
pub async fn release(db: &DatabaseConnection, node: Uuid, instance: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE instance_leases SET owner_node = NULL, lease_until = now() \
         WHERE instance_id = $1 AND owner_node = $2",
        vec![instance.into(), node.into()],
    ))
    .await?;
    Ok(())
}

/// The instance `node` would hand over first when above its share: a
/// paired one (never one mid-pairing, whose QR flow would break).
pub async fn rebalance_candidate(
    db: &DatabaseConnection,
    node: Uuid,
) -> Result<Option<Uuid>, DbErr> {
    let sql = format!(
        "SELECT l.instance_id FROM instance_leases l JOIN instances i ON i.id = l.instance_id \
         WHERE l.owner_node = $1 AND i.status IN {PAIRED} \
         ORDER BY l.instance_id DESC LIMIT 1"
    );
    let row = db.query_one_raw(stmt(&sql, vec![node.into()])).await?;
    row.map(|r| r.try_get("", "instance_id")).transpose()
}

/// Gives every lease of `node` back, and its leadership.
pub async fn release_all(db: &DatabaseConnection, node: Uuid) -> Result<u64, DbErr> {
    let released = db
        .execute_raw(stmt(
            "UPDATE instance_leases SET owner_node = NULL, lease_until = now() \
             WHERE owner_node = $1",
            vec![node.into()],
        ))
        .await?
        .rows_affected();
    db.execute_raw(stmt(
        "UPDATE cluster_leaders SET lease_until = now() WHERE owner_node = $1",
        vec![node.into()],
    ))
    .await?;
    Ok(released)
}

/// How many instances want a node (paired, or held live while pairing) and
/// how many nodes are alive: the inputs of a node's fair share. Counting
/// the pairing ones keeps a node that holds them from seeing itself above
/// its share and handing back a session mid-pairing.
pub async fn census(db: &DatabaseConnection, lease: Duration) -> Result<(u64, u64), DbErr> {
    let sql = format!(
        "SELECT (SELECT count(*) FROM instances i WHERE i.status IN {PAIRED} \
                   OR EXISTS (SELECT 1 FROM instance_leases l WHERE l.instance_id = i.id \
                              AND l.owner_node IS NOT NULL AND l.lease_until > now())) AS total, \
                (SELECT count(*) FROM cluster_nodes WHERE stopped_at IS NULL \
                   AND last_heartbeat > now() - make_interval(secs => $1)) AS alive"
    );
    let row = db.query_one_raw(stmt(&sql, vec![secs(lease)])).await?;
    let Some(row) = row else { return Ok((0, 1)) };
    let total: i64 = row.try_get("", "total")?;
    let alive: i64 = row.try_get("", "alive")?;
    Ok((total.max(0) as u64, alive.max(1) as u64))
}

/// Takes or keeps the leader lease `name`; true when this node leads.
pub async fn lead(
    db: &DatabaseConnection,
    name: &str,
    node: Uuid,
    lease: Duration,
) -> Result<bool, DbErr> {
    let sql = "INSERT INTO cluster_leaders (name, owner_node, lease_until) \
               VALUES ($1, $2, now() + make_interval(secs => $3)) \
               ON CONFLICT (name) DO UPDATE \
                 SET owner_node = EXCLUDED.owner_node, lease_until = EXCLUDED.lease_until \
                 WHERE cluster_leaders.owner_node = EXCLUDED.owner_node \
                    OR cluster_leaders.lease_until < now() \
               RETURNING owner_node";
    let row = db
        .query_one_raw(stmt(sql, vec![name.into(), node.into(), secs(lease)]))
        .await?;
    Ok(row.is_some())
}
