//! The `[cluster]` settings.

use serde::Deserialize;
use uuid::Uuid;

use crate::config::ConfigError;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Leases on PostgreSQL; SQLite ignores it (one node).
    pub enabled: bool,
    pub heartbeat_secs: u64,
    pub lease_secs: u64,
    /// A stable node id, or empty for a new one per start.
    pub node_id: String,
    pub advertised_url: String,
    pub rebalance: bool,
    /// Signs calls forwarded between nodes; empty: none are forwarded.
    pub secret: String,
}

impl ClusterSettings {
    pub fn node_id(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.node_id).ok()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| ConfigError::Invalid {
            setting,
            reason: reason.to_owned(),
        };
        if self.heartbeat_secs == 0 {
            return Err(invalid("cluster.heartbeat_secs", "must be at least 1"));
        }
        // Two missed renewals must still leave time to stop the sessions
        // before another node may claim them.
        if self.lease_secs < 3 * self.heartbeat_secs {
            return Err(invalid(
                "cluster.lease_secs",
                "must be at least 3 x cluster.heartbeat_secs",
            ));
        }
        if !self.node_id.is_empty() && self.node_id().is_none() {
            return Err(invalid("cluster.node_id", "must be empty or a UUID"));
        }
        if !self.secret.is_empty() && self.secret.len() < 32 {
            return Err(invalid(
                "cluster.secret",
                "must be empty or at least 32 characters",
            ));
        }
        let url = &self.advertised_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "cluster.advertised_url",
                "must be empty or an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}
