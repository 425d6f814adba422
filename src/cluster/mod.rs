//! Several gateway nodes on one PostgreSQL database: a node registry, one
//! lease per instance so each is connected on exactly one node, and a
//! leader lease so cluster-wide jobs run on one node at a time.
//!
//! PostgreSQL is the only coordinator: every decision is one statement
//! whose row locks settle races. A node trusts a lease only until the
//! renewal it last sent plus `lease_secs` minus one heartbeat, measured on
//! its own monotonic clock, so a node that was paused or cut off stops
//! applying its sessions' events before another node can claim them.

mod fence;
pub mod jobs;
mod leases;
mod node_loop;
pub mod nodes;
mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use uuid::Uuid;

pub use fence::Fence;
pub use node_loop::{leave, run};
pub use settings::ClusterSettings;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("instance {instance} is connected on another node ({owner})")]
    OwnedElsewhere { instance: Uuid, owner: Uuid },
}

/// A statement of the cluster's; they are PostgreSQL's only.
fn pg(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A duration as the seconds `make_interval(secs => …)` takes.
fn secs(d: Duration) -> Value {
    d.as_secs_f64().into()
}

/// The name of the leader lease that cluster-wide jobs run under.
const SCHEDULER: &str = "scheduler";

/// This node's view of the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    node_id: Uuid,
    advertised_url: String,
    heartbeat: Duration,
    lease: Duration,
    rebalance: bool,
    resume_concurrency: usize,
    /// Instances this node holds a lease on, with the lease's epoch.
    held: Mutex<HashMap<Uuid, i64>>,
    /// Until when this node may act on its leases (see the module's note).
    trusted_until: Mutex<Option<Instant>>,
    /// Until when this node leads, when it does.
    leader_until: Mutex<Option<Instant>>,
}

impl Cluster {
    /// Registers this node. `listen` is the bound API address, used when no
    /// advertised URL is configured.
    pub async fn join(
        db: DatabaseConnection,
        settings: &crate::config::Settings,
        listen: std::net::SocketAddr,
    ) -> Result<Self, ClusterError> {
        let cfg = &settings.cluster;
        let node_id = cfg.node_id().unwrap_or_else(Uuid::new_v4);
        let advertised_url = if cfg.advertised_url.is_empty() {
            format!("http://{listen}")
        } else {
            cfg.advertised_url.clone()
        };
        nodes::register(&db, node_id, &advertised_url).await?;
        tracing::info!(%node_id, %advertised_url, "joined the cluster");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                node_id,
                advertised_url,
                heartbeat: Duration::from_secs(cfg.heartbeat_secs),
                lease: Duration::from_secs(cfg.lease_secs),
                rebalance: cfg.rebalance,
                resume_concurrency: settings.whatsapp.resume_concurrency.max(1),
                held: Mutex::new(HashMap::new()),
                trusted_until: Mutex::new(None),
                leader_until: Mutex::new(None),
            }),
        })
    }

    pub fn node_id(&self) -> Uuid {
        self.inner.node_id
    }

    pub fn advertised_url(&self) -> &str {
        &self.inner.advertised_url
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, i64>> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a lease may be trusted after the statement that set it was
    /// sent: one heartbeat short of its length.
    fn trust_window(&self) -> Duration {
        self.inner.lease.saturating_sub(self.inner.heartbeat)
    }

    fn trust_from(&self, sent: Instant) {
        let until = sent + self.trust_window();
        let mut trusted = self
            .inner
            .trusted_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A claim made before the first renewal starts the window; later
        // statements only move it forward.
        if trusted.is_none_or(|t| t < until) {
            *trusted = Some(until);
        }
    }

    fn trusted(&self) -> bool {
        self.inner
            .trusted_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| Instant::now() < t)
    }

    /// Whether this node may act for `instance` now: it holds the lease and
    /// the lease cannot have expired yet.
    pub fn holds(&self, instance: Uuid) -> bool {
        self.held().contains_key(&instance) && self.trusted()
    }

    /// How many instances this node holds.
    pub fn held_count(&self) -> usize {
        self.held().len()
    }

    /// Takes the lease on `instance` for this node, unless another live
    /// node holds it. Used before a session starts on demand (pairing).
    pub async fn acquire(&self, instance: Uuid) -> Result<(), ClusterError> {
        if self.holds(instance) {
            return Ok(());
        }
        let sent = Instant::now();
        let lease = self.inner.lease;
        match leases::acquire(&self.inner.db, self.inner.node_id, instance, lease).await? {
            leases::Acquired::Ours(epoch) => {
                self.trust_from(sent);
                self.held().insert(instance, epoch);
                Ok(())
            }
            leases::Acquired::Elsewhere(owner) => {
                Err(ClusterError::OwnedElsewhere { instance, owner })
            }
        }
    }

    /// Stops trusting the lease on `instance` (its session is being given
    /// up), so its events are no longer applied here.
    fn forget(&self, instance: Uuid) -> bool {
        self.held().remove(&instance).is_some()
    }

    /// Whether this node runs the cluster-wide jobs now.
    pub fn is_leader(&self) -> bool {
        self.inner
            .leader_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| Instant::now() < t)
    }

    fn set_leader(&self, leads: bool, sent: Instant) {
        *self
            .inner
            .leader_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = leads.then(|| sent + self.trust_window());
    }

    /// The lease length, for views that judge liveness.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The advertised URL of the live node, other than this one, that holds
    /// `instance` now; `None` when this node or nobody does.
    pub async fn owner_elsewhere(&self, instance: Uuid) -> Result<Option<String>, sea_orm::DbErr> {
        let sql = "SELECT n.advertised_url FROM instance_leases l \
                   JOIN cluster_nodes n ON n.id = l.owner_node \
                   WHERE l.instance_id = $1 AND l.lease_until > now() \
                     AND n.stopped_at IS NULL AND n.id <> $2";
        let row = self
            .inner
            .db
            .query_one_raw(pg(sql, vec![instance.into(), self.inner.node_id.into()]))
            .await?;
        row.map(|r| r.try_get("", "advertised_url")).transpose()
    }

    /// The advertised URL of a live node, other than this one, holding an
    /// online instance among `among` (every instance when `None`): where a
    /// call that any online instance can answer goes when none is here.
    pub async fn owner_of_any_online(
        &self,
        among: Option<&[Uuid]>,
    ) -> Result<Option<String>, sea_orm::DbErr> {
        let mut values: Vec<Value> = vec![self.inner.node_id.into()];
        let only = match among {
            None => String::new(),
            Some([]) => return Ok(None),
            Some(ids) => {
                let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
                values.extend(ids.iter().map(|id| Value::from(*id)));
                format!(" AND l.instance_id IN ({})", marks.join(", "))
            }
        };
        let sql = format!(
            "SELECT n.advertised_url FROM instance_leases l \
             JOIN cluster_nodes n ON n.id = l.owner_node \
             JOIN instances i ON i.id = l.instance_id \
             WHERE i.status = 'online' AND l.lease_until > now() \
               AND n.stopped_at IS NULL AND n.id <> $1{only} LIMIT 1"
        );
        let row = self.inner.db.query_one_raw(pg(&sql, values)).await?;
        row.map(|r| r.try_get("", "advertised_url")).transpose()
    }
}
