//! What every node runs: the heartbeat and lease renewal, a watchdog that
//! drops sessions whose lease can no longer be trusted, the claiming of
//! unowned instances up to a fair share, and the hand-back at shutdown.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;

use super::{Cluster, SCHEDULER, leases, nodes};
use crate::instances::sessions::Sessions;

/// Runs until `stop` turns true, then gives every lease back once the
/// sessions have disconnected (the caller stops them first).
pub async fn run(cluster: Cluster, sessions: Sessions, stop: watch::Receiver<bool>) {
    let adopted = match leases::adopt(cluster.db(), cluster.node_id(), cluster.inner.lease).await {
        Ok(adopted) => adopted,
        Err(e) => {
            tracing::warn!(error = %e, "could not take back this node's earlier leases");
            Vec::new()
        }
    };
    if !adopted.is_empty() {
        let sent = Instant::now();
        cluster.trust_from(sent);
        cluster.held().extend(adopted.iter().copied());
        let ids = adopted.into_iter().map(|(id, _)| id).collect();
        let sessions = sessions.clone();
        let concurrency = cluster.inner.resume_concurrency;
        tokio::spawn(async move { sessions.resume(ids, concurrency).await });
    }
    let renewer = tokio::spawn(renew_loop(cluster.clone(), sessions.clone(), stop.clone()));
    let watchdog = tokio::spawn(watchdog(cluster.clone(), sessions.clone(), stop.clone()));
    claim_loop(cluster.clone(), sessions, stop).await;
    let _ = renewer.await;
    let _ = watchdog.await;
}

/// Hands everything back after the sessions stopped: other nodes take the
/// instances at once instead of after `lease_secs`.
pub async fn leave(cluster: &Cluster) {
    cluster.held().clear();
    let db = cluster.db();
    match leases::release_all(db, cluster.node_id()).await {
        Ok(n) => tracing::info!(released = n, "gave this node's leases back"),
        Err(e) => tracing::warn!(error = %e, "could not give the leases back; they expire"),
    }
    if let Err(e) = nodes::stopped(db, cluster.node_id()).await {
        tracing::warn!(error = %e, "could not mark this node stopped");
    }
}

/// Waits one period; false once the node is stopping.
async fn tick(every: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopping = tokio::select! {
        _ = tokio::time::sleep(every) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopping && !*stop.borrow()
}

async fn renew_loop(cluster: Cluster, sessions: Sessions, mut stop: watch::Receiver<bool>) {
    let every = cluster.inner.heartbeat;
    let lease = cluster.inner.lease;
    let db = cluster.db().clone();
    let me = cluster.node_id();
    let mut prune_at = Instant::now();
    loop {
        let sent = Instant::now();
        // Leases taken while the renewal is under way are not in its answer
        // and are not lost: only what was held before it was sent counts.
        let before: Vec<Uuid> = cluster.held().keys().copied().collect();
        let renewal = async {
            nodes::heartbeat(&db, me).await?;
            let renewed = leases::renew(&db, me, lease).await?;
            let leads = leases::lead(&db, SCHEDULER, me, lease).await?;
            Ok::<_, sea_orm::DbErr>((renewed, leads))
        };
        // A hung statement must not outlive the lease it is renewing.
        match tokio::time::timeout(every, renewal).await {
            Ok(Ok((renewed, leads))) => {
                cluster.trust_from(sent);
                let renewed: HashSet<Uuid> = renewed.into_iter().map(|(id, _)| id).collect();
                let lost: Vec<Uuid> = before
                    .into_iter()
                    .filter(|id| !renewed.contains(id))
                    .collect();
                for id in lost {
                    tracing::warn!(instance_id = %id, "lease lost; disconnecting here");
                    cluster.forget(id);
                    sessions.give_up(id).await;
                }
                cluster.set_leader(leads, sent);
                if leads && prune_at <= Instant::now() {
                    prune_at = Instant::now() + Duration::from_secs(3600);
                    if let Err(e) = nodes::prune(&db).await {
                        tracing::warn!(error = %e, "could not prune old nodes");
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "could not renew leases"),
            Err(_) => tracing::warn!("renewing leases timed out"),
        }
        if !tick(every, &mut stop).await {
            break;
        }
    }
}

/// Once the trust window passed without a renewal, every session goes:
/// another node may claim its instance as soon as the lease runs out.
async fn watchdog(cluster: Cluster, sessions: Sessions, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(250);
    loop {
        if !cluster.trusted() {
            let held: Vec<Uuid> = cluster.held().drain().map(|(id, _)| id).collect();
            if !held.is_empty() {
                tracing::error!(
                    count = held.len(),
                    "leases could not be renewed in time; disconnecting their sessions"
                );
            }
            for id in held {
                sessions.give_up(id).await;
            }
        }
        if !tick(every, &mut stop).await {
            break;
        }
    }
}

async fn claim_loop(cluster: Cluster, sessions: Sessions, mut stop: watch::Receiver<bool>) {
    let db = cluster.db().clone();
    let me = cluster.node_id();
    let lease = cluster.inner.lease;
    let concurrency = cluster.inner.resume_concurrency;
    loop {
        let mut claimed_any = false;
        match leases::census(&db, lease).await {
            Ok((total, alive)) => {
                let share = total.div_ceil(alive) as usize;
                let held = cluster.held_count();
                if held < share {
                    let sent = Instant::now();
                    match leases::claim(&db, me, lease, (share - held).min(concurrency)).await {
                        Ok(claimed) if !claimed.is_empty() => {
                            claimed_any = true;
                            cluster.trust_from(sent);
                            cluster.held().extend(claimed.iter().copied());
                            tracing::info!(count = claimed.len(), "claimed instances");
                            let ids = claimed.into_iter().map(|(id, _)| id).collect();
                            sessions.resume(ids, concurrency).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not claim instances"),
                    }
                } else if cluster.inner.rebalance && held > share {
                    give_back_one(&cluster, &sessions).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count the cluster"),
        }
        if !claimed_any {
            sessions.mark_resumed();
        }
        // A batch that filled up goes straight on to the next one.
        if claimed_any && !*stop.borrow() {
            continue;
        }
        if !tick(cluster.inner.heartbeat, &mut stop).await {
            break;
        }
    }
}

/// Hands one instance to the rest of the cluster: its events stop being
/// applied here first, then its session disconnects, then its lease goes.
async fn give_back_one(cluster: &Cluster, sessions: &Sessions) {
    let id = match leases::rebalance_candidate(cluster.db(), cluster.node_id()).await {
        Ok(Some(id)) if cluster.held().contains_key(&id) => id,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not pick an instance to hand over");
            return;
        }
    };
    cluster.forget(id);
    sessions.give_up(id).await;
    match leases::release(cluster.db(), cluster.node_id(), id).await {
        Ok(()) => tracing::info!(instance_id = %id, "gave an instance to a less busy node"),
        Err(e) => tracing::warn!(instance_id = %id, error = %e, "release failed; it expires"),
    }
}
