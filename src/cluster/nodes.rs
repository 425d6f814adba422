//! The node registry (`cluster_nodes`) and what `GET /v1/admin/nodes` shows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use super::{pg as stmt, secs};

pub async fn register(db: &DatabaseConnection, id: Uuid, url: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO cluster_nodes \
           (id, advertised_url, version, started_at, last_heartbeat, stopped_at) \
         VALUES ($1, $2, $3, now(), now(), NULL) \
         ON CONFLICT (id) DO UPDATE SET advertised_url = EXCLUDED.advertised_url, \
           version = EXCLUDED.version, started_at = now(), last_heartbeat = now(), \
           stopped_at = NULL",
        vec![id.into(), url.into(), env!("CARGO_PKG_VERSION").into()],
    ))
    .await?;
    Ok(())
}

pub async fn heartbeat(db: &DatabaseConnection, id: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE cluster_nodes SET last_heartbeat = now() WHERE id = $1",
        vec![id.into()],
    ))
    .await?;
    Ok(())
}

pub async fn stopped(db: &DatabaseConnection, id: Uuid) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE cluster_nodes SET stopped_at = now() WHERE id = $1",
        vec![id.into()],
    ))
    .await?;
    Ok(())
}

/// Nodes not heard from for a day are history, not members.
pub async fn prune(db: &DatabaseConnection) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(stmt(
            "DELETE FROM cluster_nodes WHERE last_heartbeat < now() - interval '1 day'",
            vec![],
        ))
        .await?
        .rows_affected())
}

/// One node as the registry and the leases describe it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: Uuid,
    pub advertised_url: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Heard from within one lease and not stopped.
    pub alive: bool,
    /// Instances under a live lease of this node.
    pub instances: i64,
    /// Leases of this node that have run out without being renewed.
    pub expired_leases: i64,
    pub leader: bool,
}

pub async fn list(db: &DatabaseConnection, lease: Duration) -> Result<Vec<NodeView>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT n.id, n.advertised_url, n.version, n.started_at, n.last_heartbeat, \
               n.stopped_at, \
               (n.stopped_at IS NULL AND n.last_heartbeat > now() - make_interval(secs => $1)) \
                 AS alive, \
               (SELECT count(*) FROM instance_leases l \
                  WHERE l.owner_node = n.id AND l.lease_until > now()) AS instances, \
               (SELECT count(*) FROM instance_leases l \
                  WHERE l.owner_node = n.id AND l.lease_until <= now()) AS expired_leases, \
               EXISTS (SELECT 1 FROM cluster_leaders c \
                  WHERE c.owner_node = n.id AND c.lease_until > now()) AS leader \
             FROM cluster_nodes n ORDER BY n.started_at, n.id",
            vec![secs(lease)],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(NodeView {
                id: r.try_get("", "id")?,
                advertised_url: r.try_get("", "advertised_url")?,
                version: r.try_get("", "version")?,
                started_at: r.try_get("", "started_at")?,
                last_heartbeat: r.try_get("", "last_heartbeat")?,
                stopped_at: r.try_get("", "stopped_at")?,
                alive: r.try_get("", "alive")?,
                instances: r.try_get("", "instances")?,
                expired_leases: r.try_get("", "expired_leases")?,
                leader: r.try_get("", "leader")?,
            })
        })
        .collect()
}
