//! Prometheus metrics: the process-wide recorder, one small function per
//! thing worth counting (called where it happens), and the scrape, which
//! adds the gauges read from the database at that moment.
//!
//! Labels stay low-cardinality: no instance, webhook or message ids.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use entity::{instances, webhook_deliveries, webhook_due, webhooks};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::engine::EngineEvent;
use crate::webhooks::attempt::{AttemptResult, Verdict};

/// Latency buckets in seconds, from a fast local call to a slow webhook.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process (tests start many servers in one
/// process; they share it) and returns the handle that renders it. `None`
/// when another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .map_err(|e| tracing::warn!(error = %e, "metrics buckets"))
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder is already installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The exposition text: the recorded series plus gauges read now from the
/// database. A gauge that cannot be read keeps its last value (and the
/// failure is logged), so a scrape never fails for it.
pub async fn render(db: &DatabaseConnection) -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    if let Err(e) = refresh_gauges(db).await {
        tracing::warn!(error = %e, "reading metrics gauges");
    }
    pool_gauges(db);
    handle.run_upkeep();
    handle.render()
}

async fn refresh_gauges(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::Iterable;
    let counts: Vec<(instances::Status, i64)> = instances::Entity::find()
        .select_only()
        .column(instances::Column::Status)
        .column_as(instances::Column::Id.count(), "n")
        .group_by(instances::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    for status in instances::Status::iter() {
        let n = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        gauge!("wagate_instances", "status" => crate::instances::lifecycle::status_name(status))
            .set(n as f64);
    }
    // Open deliveries are exactly the due queue's rows; ids are UUIDv7, so
    // the lowest is the oldest.
    let backlog = webhook_due::Entity::find().count(db).await?;
    gauge!("wagate_webhook_backlog").set(backlog as f64);
    let first = webhook_due::Entity::find()
        .order_by_asc(webhook_due::Column::DeliveryId)
        .one(db)
        .await?;
    let oldest = match first {
        Some(q) => webhook_deliveries::Entity::find_by_id(q.delivery_id)
            .one(db)
            .await?
            .map_or(0.0, |d| {
                (Utc::now() - d.created_at)
                    .to_std()
                    .unwrap_or_default()
                    .as_secs_f64()
            }),
        None => 0.0,
    };
    gauge!("wagate_webhook_oldest_pending_seconds").set(oldest);
    let disabled = webhooks::Entity::find()
        .filter(webhooks::Column::Enabled.eq(false))
        .count(db)
        .await?;
    gauge!("wagate_webhook_endpoints_disabled").set(disabled as f64);
    Ok(())
}

fn pool_gauges(db: &DatabaseConnection) {
    use sea_orm::DatabaseConnectionType as T;
    let (size, idle) = match &db.inner {
        T::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        T::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => return,
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
    gauge!("wagate_db_pool_connections", "state" => "in_use").set(f64::from(size - idle));
    gauge!("wagate_db_pool_connections", "state" => "idle").set(f64::from(idle));
}

/// A session event that a status change was made of.
pub fn lifecycle(event: &EngineEvent) {
    let reason = match event {
        EngineEvent::Connected { .. } => {
            counter!("wagate_connects_total").increment(1);
            return;
        }
        EngineEvent::Disconnected { .. } => "connection_lost",
        EngineEvent::StreamReplaced => "stream_replaced",
        EngineEvent::TemporaryBan { .. } => "temporary_ban",
        EngineEvent::ConnectFailure { .. } => "connect_failure",
        EngineEvent::LoggedOut { .. } => "logged_out",
        _ => return,
    };
    counter!("wagate_disconnects_total", "reason" => reason).increment(1);
}

/// The reconnect sweep tried to start a disconnected instance.
pub fn reconnect_attempt() {
    counter!("wagate_reconnect_attempts_total").increment(1);
}

/// A message handed to WhatsApp; `kind` is `text` or a media kind.
pub fn send(kind: &'static str, ok: bool, took: Duration) {
    let outcome = if ok { "sent" } else { "failed" };
    counter!("wagate_sends_total", "kind" => kind, "outcome" => outcome).increment(1);
    histogram!("wagate_send_duration_seconds", "kind" => kind).record(took.as_secs_f64());
}

/// Messages received from WhatsApp (redeliveries not counted).
pub fn inbound(n: u64) {
    counter!("wagate_inbound_messages_total").increment(n);
}

/// Webhook attempts whose outcome was just recorded. A success also records
/// how long after its event was created (the commit) the receiver took it;
/// the event id is a UUIDv7, which carries that time.
pub fn attempts(batch: &[AttemptResult]) {
    let now = Utc::now().timestamp_millis();
    for r in batch {
        let outcome = match r.verdict {
            Verdict::Succeeded => "succeeded",
            Verdict::Retry => "retry",
            Verdict::Failed => "failed",
            Verdict::Gone => "gone",
        };
        counter!("wagate_webhook_attempts_total", "outcome" => outcome).increment(1);
        if r.verdict == Verdict::Succeeded
            && let Some(created) = event_time_ms(&r.job.event_id)
        {
            let secs = (now - created).max(0) as f64 / 1000.0;
            histogram!("wagate_webhook_delivery_seconds").record(secs);
        }
    }
}

fn event_time_ms(event_id: &str) -> Option<i64> {
    let id = uuid::Uuid::try_parse(event_id.strip_prefix("msg_")?).ok()?;
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

/// A scheduled job ran.
pub fn job_run(job: &str, ok: bool) {
    counter!("wagate_scheduler_runs_total", "job" => job.to_owned()).increment(1);
    if !ok {
        counter!("wagate_scheduler_failures_total", "job" => job.to_owned()).increment(1);
    }
}

/// An HTTP request answered; `route` is its template (`/v1/instances/{id}`).
pub fn http(method: &str, route: String, status: u16, took: Duration) {
    let method = method.to_owned();
    counter!(
        "wagate_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    histogram!("wagate_http_request_duration_seconds", "method" => method, "route" => route)
        .record(took.as_secs_f64());
}

/// Event streams open now.
pub fn streams(delta: f64) {
    gauge!("wagate_event_streams").increment(delta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_carry_their_creation_time() {
        let before = Utc::now().timestamp_millis();
        let id = crate::webhooks::events::new_event_id();
        let at = event_time_ms(&id).unwrap();
        assert!((before..=Utc::now().timestamp_millis()).contains(&at));
        assert_eq!(event_time_ms("msg_nonsense"), None);
        assert_eq!(event_time_ms("evt_0190"), None);
    }
}
