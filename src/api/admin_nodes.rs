//! The body of `GET /v1/admin/nodes`.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use super::error::ApiError;
use crate::cluster::nodes::{self, NodeView};
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(rename = "Nodes")]
pub struct NodesView {
    /// Whether instances are shared between nodes by leases.
    pub cluster: bool,
    /// The node that answered, on a cluster.
    #[oai(skip_serializing_if_is_none)]
    pub this_node: Option<Uuid>,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Node {
    pub id: Uuid,
    /// Where the other nodes reach it.
    pub advertised_url: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Heard from within one lease and not stopped.
    pub alive: bool,
    /// Instances connected on it under a live lease.
    pub instances: i64,
    /// Its leases that ran out unrenewed (their instances are claimable).
    pub expired_leases: i64,
    /// Whether it runs the cluster-wide jobs now.
    pub leader: bool,
}

impl From<NodeView> for Node {
    fn from(n: NodeView) -> Self {
        Self {
            id: n.id,
            advertised_url: n.advertised_url,
            version: n.version,
            started_at: n.started_at,
            last_heartbeat: n.last_heartbeat,
            stopped_at: n.stopped_at,
            alive: n.alive,
            instances: n.instances,
            expired_leases: n.expired_leases,
            leader: n.leader,
        }
    }
}

pub async fn list(state: &AppState) -> Result<NodesView, ApiError> {
    let Some(cluster) = state.sessions.cluster() else {
        return Ok(NodesView {
            cluster: false,
            this_node: None,
            nodes: Vec::new(),
        });
    };
    let listed = nodes::list(cluster.db(), cluster.lease())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(NodesView {
        cluster: true,
        this_node: Some(cluster.node_id()),
        nodes: listed.into_iter().map(Into::into).collect(),
    })
}
