//! The fencing epoch on writes that come from a live session: a node whose
//! lease was taken over (it was paused, or cut off, past its lease) must
//! not overwrite what the new owner records, even when its own clock still
//! trusts the lease. The check is part of the write's own statement where
//! the write is one UPDATE, so no takeover can slip in between.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

use super::{Cluster, pg};

/// The lease a session's writes are made under: this node's, at the epoch
/// it was taken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    instance: Uuid,
    node: Uuid,
    epoch: i64,
}

/// True while the instance's lease is still `node`'s at `epoch`.
const HELD: &str = "EXISTS (SELECT 1 FROM instance_leases \
                    WHERE instance_id = $1 AND owner_node = $2 AND epoch = $3)";

impl Fence {
    fn values(&self) -> [Value; 3] {
        [self.instance.into(), self.node.into(), self.epoch.into()]
    }

    /// The condition a write adds to its WHERE clause (PostgreSQL's only:
    /// fences exist only on cluster nodes).
    pub fn condition(&self) -> SimpleExpr {
        Expr::cust_with_values(HELD, self.values())
    }

    /// Who a claim made under this lease is (see
    /// [`crate::messaging::idempotency`]): another node's, or an older
    /// lease's, is a claimer that is gone.
    pub fn claimer(&self) -> String {
        format!("lease:{}:{}", self.node, self.epoch)
    }

    /// The same condition asked on its own, for writes that are not one
    /// UPDATE (inserts of messages and events): checked just before them.
    pub async fn holds<C: ConnectionTrait>(&self, conn: &C) -> Result<bool, DbErr> {
        let row = conn
            .query_one_raw(pg(&format!("SELECT {HELD} AS held"), self.values().into()))
            .await?;
        Ok(row.is_some_and(|r| r.try_get::<bool>("", "held").unwrap_or(false)))
    }
}

impl Cluster {
    /// The fence for writes of `instance`'s session, when this node holds
    /// its lease.
    pub fn fence(&self, instance: Uuid) -> Option<Fence> {
        let epoch = *self.held().get(&instance)?;
        Some(Fence {
            instance,
            node: self.inner.node_id,
            epoch,
        })
    }

    /// Drops `instance` after a fenced write found its lease taken over.
    pub fn fenced_out(&self, instance: Uuid) {
        if self.forget(instance) {
            tracing::warn!(%instance, "lease taken over by another node; disconnecting here");
        }
    }
}
