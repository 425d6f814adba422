//! Recording attempts: one transaction per batch of finished attempts writes
//! the attempt log (one multi-row INSERT), moves each delivery on (out of
//! the due queue, or back into it for a retry), keeps each webhook's failure
//! clock and disables endpoints that are gone or have failed for too long.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::webhook_attempts;
use entity::webhook_deliveries::{self, Status};
use entity::webhooks;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::attempt::{AttemptResult, Verdict};
use super::due;
use super::events::{Audience, EventType, record_for};
use super::registry;
use super::retry::next_delay;
use crate::config::WebhookSettings;

/// Writes a batch of finished attempts made under `token`.
pub async fn write_batch(
    db: &DatabaseConnection,
    token: Uuid,
    settings: &WebhookSettings,
    results: &[AttemptResult],
) -> Result<(), DbErr> {
    if results.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;

    // Where each delivery goes next.
    let mut failing = BTreeSet::new();
    let mut gone = BTreeSet::new();
    let outcomes: Vec<(Status, DateTime<Utc>)> = results
        .iter()
        .map(|r| match r.verdict {
            Verdict::Succeeded => (Status::Succeeded, now),
            Verdict::Retry => {
                failing.insert(r.job.webhook_id);
                let made = usize::try_from(r.job.attempt).unwrap_or(usize::MAX);
                match next_delay(
                    &settings.retry_schedule_secs,
                    made,
                    settings.retry_jitter,
                    r.retry_after,
                    Duration::from_secs_f64(settings.retry_after_max_secs),
                ) {
                    Some(delay) => (Status::Pending, after(now, delay)),
                    None => (Status::Dead, now),
                }
            }
            Verdict::Failed => {
                failing.insert(r.job.webhook_id);
                (Status::Failed, now)
            }
            Verdict::Gone => {
                failing.insert(r.job.webhook_id);
                gone.insert(r.job.webhook_id);
                (Status::Failed, now)
            }
        })
        .collect();

    // The due queue first (the claim's lock order): closed deliveries
    // leave it, retries wait in it again. Only what is still leased to
    // this dispatcher moves on; the rest was reclaimed meanwhile.
    let closing: Vec<Uuid> = results
        .iter()
        .zip(&outcomes)
        .filter(|(_, (status, _))| *status != Status::Pending)
        .map(|(r, _)| r.job.delivery_id)
        .collect();
    let mut held = due::close(&txn, token, &closing).await?;
    for (r, (status, at)) in results.iter().zip(&outcomes) {
        if *status == Status::Pending
            && due::reschedule(&txn, token, r.job.delivery_id, *at).await?
        {
            held.insert(r.job.delivery_id);
        }
    }

    let mut succeeded = BTreeSet::new();
    // Successes, the hot path, share one statement per (attempt, status).
    let mut successes: BTreeMap<(i32, Option<u16>), Vec<Uuid>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.verdict == Verdict::Succeeded) {
        succeeded.insert(r.job.webhook_id);
        if held.contains(&r.job.delivery_id) {
            successes
                .entry((r.job.attempt, r.status_code))
                .or_default()
                .push(r.job.delivery_id);
        }
    }
    for ((attempt, code), ids) in successes {
        webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::Status,
                Expr::value(Status::Succeeded),
            )
            .col_expr(webhook_deliveries::Column::Attempts, Expr::value(attempt))
            .col_expr(
                webhook_deliveries::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                webhook_deliveries::Column::ClaimToken,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(
                webhook_deliveries::Column::LastStatusCode,
                Expr::value(code.map(i32::from)),
            )
            .col_expr(
                webhook_deliveries::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(webhook_deliveries::Column::DeliveredAt, Expr::value(now))
            .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_deliveries::Column::Id.is_in(ids))
            .filter(webhook_deliveries::Column::ClaimToken.eq(token))
            .filter(webhook_deliveries::Column::Status.eq(Status::Delivering))
            .exec(&txn)
            .await?;
    }
    for (r, (status, next_at)) in results.iter().zip(&outcomes) {
        if r.verdict == Verdict::Succeeded || !held.contains(&r.job.delivery_id) {
            continue;
        }
        let error = r.error.clone();
        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(*status))
            .col_expr(
                webhook_deliveries::Column::Attempts,
                Expr::value(r.job.attempt),
            )
            .col_expr(
                webhook_deliveries::Column::NextAttemptAt,
                Expr::value(*next_at),
            )
            .col_expr(
                webhook_deliveries::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                webhook_deliveries::Column::ClaimToken,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(
                webhook_deliveries::Column::LastStatusCode,
                Expr::value(r.status_code.map(i32::from)),
            )
            .col_expr(webhook_deliveries::Column::LastError, Expr::value(error))
            // (delivered_at stays empty for every verdict but success)
            .col_expr(
                webhook_deliveries::Column::DeliveredAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_deliveries::Column::Id.eq(r.job.delivery_id))
            .filter(webhook_deliveries::Column::ClaimToken.eq(token))
            .filter(webhook_deliveries::Column::Status.eq(Status::Delivering))
            .exec(&txn)
            .await?;
    }

    // A delivery deleted meanwhile (its webhook or instance was deleted)
    // has no attempt log left to write to; skip it rather than fail the
    // whole batch.
    let live: BTreeSet<Uuid> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::Id)
        .filter(webhook_deliveries::Column::Id.is_in(results.iter().map(|r| r.job.delivery_id)))
        .into_tuple::<Uuid>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    let results: Vec<&AttemptResult> = results
        .iter()
        .filter(|r| live.contains(&r.job.delivery_id))
        .collect();
    if !results.is_empty() {
        webhook_attempts::Entity::insert_many(results.iter().copied().map(attempt_row))
            .exec_without_returning(&txn)
            .await?;
    }

    // A webhook that both succeeded and failed in this batch is not failing
    // continuously: the success resets its clock.
    let failing: Vec<Uuid> = failing.difference(&succeeded).copied().collect();
    if !succeeded.is_empty() {
        webhooks::Entity::update_many()
            .col_expr(
                webhooks::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(webhooks::Column::Id.is_in(succeeded.iter().copied()))
            .filter(webhooks::Column::FailingSince.is_not_null())
            .exec(&txn)
            .await?;
    }
    if !failing.is_empty() {
        webhooks::Entity::update_many()
            .col_expr(webhooks::Column::FailingSince, Expr::value(now))
            .filter(webhooks::Column::Id.is_in(failing.iter().copied()))
            .filter(webhooks::Column::FailingSince.is_null())
            .exec(&txn)
            .await?;
        let period = chrono::Duration::seconds(
            i64::try_from(settings.disable_after_failing_secs).unwrap_or(i64::MAX / 1000),
        );
        let cutoff = now.checked_sub_signed(period).unwrap_or(now);
        let worn_out = webhooks::Entity::find()
            .filter(webhooks::Column::Id.is_in(failing.iter().copied()))
            .filter(webhooks::Column::Enabled.eq(true))
            .filter(webhooks::Column::FailingSince.lte(cutoff))
            .all(&txn)
            .await?;
        for w in worn_out {
            let since = w.failing_since.unwrap_or(now);
            let reason = format!(
                "every attempt has failed since {}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            disable(&txn, &w, &reason).await?;
        }
    }
    for id in gone {
        if let Some(w) = webhooks::Entity::find_by_id(id).one(&txn).await? {
            disable(&txn, &w, "the endpoint answered 410 Gone").await?;
        }
    }
    txn.commit().await
}

/// Disables a webhook and tells the instance's other webhooks.
async fn disable<C: ConnectionTrait>(
    txn: &C,
    w: &webhooks::Model,
    reason: &str,
) -> Result<(), DbErr> {
    if !registry::disable(txn, w.id, reason).await? {
        return Ok(());
    }
    tracing::warn!(webhook_id = %w.id, instance_id = ?w.instance_id, %reason, "webhook disabled");
    // A global webhook belongs to no instance, so there is no instance's
    // event stream to report it in; the log and its row say it.
    let Some(instance_id) = w.instance_id else {
        return Ok(());
    };
    record_for(
        txn,
        instance_id,
        EventType::EndpointDisabled,
        json!({
            "webhook_id": w.id,
            "url": w.url,
            "reason": reason,
            "failing_since": w.failing_since,
        }),
        Audience::AllBut(w.id),
    )
    .await?;
    Ok(())
}

fn after(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

fn attempt_row(r: &AttemptResult) -> webhook_attempts::ActiveModel {
    webhook_attempts::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(r.job.delivery_id),
        attempt: Set(r.job.attempt),
        started_at: Set(r.started_at),
        duration_ms: Set(i64::try_from(r.duration.as_millis()).unwrap_or(i64::MAX)),
        status_code: Set(r.status_code.map(i32::from)),
        response_body: Set(r.response_body.clone()),
        error_kind: Set(r.error_kind.map(str::to_owned)),
        error: Set(r.error.clone()),
    }
}
