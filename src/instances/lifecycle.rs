//! The lifecycle state machine: how each engine event changes an instance,
//! persisted together with its outbox event in one transaction.
//!
//! `logged_out` is terminal, and every update is conditional on the row not
//! being logged out, so a late event can never revive an unlinked instance.

use chrono::{DateTime, Utc};
use entity::instances::{ActiveModel, Column, Entity, Status};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Instance;
use crate::cluster::Fence;
use crate::engine::EngineEvent;
use crate::webhooks::{EventType, Webhooks};

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub previous: Status,
    pub status: Status,
}

/// Applies `event` to the instance. `None` when the instance is gone or
/// logged out, or when `fence` (the lease a cluster node's session writes
/// under) is no longer this node's, in which case nothing changed.
pub async fn apply(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    event: &EngineEvent,
    fence: Option<&Fence>,
) -> Result<Option<Applied>, DbErr> {
    if event.is_message() {
        return Ok(None);
    }
    // One event per transaction: on SQLite it may share its commit with
    // others recorded at the same moment.
    let applied = hooks
        .write(db, async |txn, outbox| {
            let Some(instance) = Entity::find_by_id(instance_id).one(txn).await? else {
                return Ok(None);
            };
            if instance.status == Status::LoggedOut {
                return Ok(None);
            }
            let now = Utc::now();
            let change = transition(txn, &instance, event, now).await?;
            let mut row = change.row;
            row.updated_at = Set(now);
            let mut update = Entity::update_many()
                .set(row)
                .filter(Column::Id.eq(instance_id))
                .filter(Column::Status.ne(Status::LoggedOut));
            if let Some(fence) = fence {
                update = update.filter(fence.condition());
            }
            let updated = update.exec(txn).await?;
            if updated.rows_affected == 0 {
                return Ok(None);
            }
            if let Some((event_type, data)) = change.event {
                outbox.record(txn, instance_id, event_type, data).await?;
            }
            Ok(Some(Applied {
                previous: instance.status,
                status: change.status,
            }))
        })
        .await?;
    if applied.is_some() {
        crate::metrics::lifecycle(event);
    }
    Ok(applied)
}

struct Change {
    status: Status,
    row: ActiveModel,
    event: Option<(EventType, Value)>,
}

pub fn status_name(status: Status) -> String {
    status.to_value()
}

/// The payload every status event carries.
fn status_event(previous: Status, status: Status, reason: &str, detail: Option<&str>) -> Value {
    json!({
        "status": status_name(status),
        "previous_status": status_name(previous),
        "reason": reason,
        "detail": detail,
    })
}

async fn transition<C: ConnectionTrait>(
    conn: &C,
    instance: &Instance,
    event: &EngineEvent,
    now: DateTime<Utc>,
) -> Result<Change, DbErr> {
    let previous = instance.status;
    let mut row = ActiveModel::default();
    let mut status = previous;
    let mut set_status = |row: &mut ActiveModel, s: Status| {
        status = s;
        row.status = Set(s);
    };
    let event_out = match event {
        EngineEvent::Qr {
            code,
            valid_for,
            attempt,
        } => {
            set_status(&mut row, Status::QrPending);
            row.last_error = Set(None);
            let expires_at = now + chrono::Duration::from_std(*valid_for).unwrap_or_default();
            Some((
                EventType::InstanceQr,
                json!({
                    "status": status_name(Status::QrPending),
                    "previous_status": status_name(previous),
                    "code": code,
                    "expires_at": expires_at,
                    "attempt": attempt,
                }),
            ))
        }
        EngineEvent::QrExhausted => {
            set_status(&mut row, Status::Created);
            let detail = "pairing stopped: every QR code expired without a scan";
            row.last_error = Set(Some(detail.into()));
            Some((
                EventType::InstanceDisconnected,
                status_event(
                    previous,
                    Status::Created,
                    "qr_codes_exhausted",
                    Some(detail),
                ),
            ))
        }
        EngineEvent::Paired {
            jid,
            lid,
            phone_number,
        } => {
            row.jid = Set(Some(jid.clone()));
            let phone = claim_number(conn, instance.id, phone_number.as_deref(), &mut row).await?;
            Some((
                EventType::InstancePaired,
                json!({
                    "status": status_name(previous),
                    "jid": jid,
                    "lid": lid,
                    "phone_number": phone,
                }),
            ))
        }
        EngineEvent::PairError { reason } => {
            row.last_error = Set(Some(format!("pairing failed: {reason}")));
            None
        }
        EngineEvent::Connected { jid, phone_number } => {
            set_status(&mut row, Status::Online);
            row.is_connected = Set(true);
            row.last_connected_at = Set(Some(now));
            row.last_error = Set(None);
            if let Some(jid) = jid {
                row.jid = Set(Some(jid.clone()));
            }
            let phone = match phone_number {
                Some(p) => claim_number(conn, instance.id, Some(p), &mut row).await?,
                None => instance.phone_number.clone(),
            };
            (previous != Status::Online).then(|| {
                (
                    EventType::InstanceConnected,
                    json!({
                        "status": status_name(Status::Online),
                        "previous_status": status_name(previous),
                        "phone_number": phone,
                        "jid": jid.clone().or_else(|| instance.jid.clone()),
                    }),
                )
            })
        }
        EngineEvent::Disconnected { reason } => went_offline(
            &mut row,
            &mut set_status,
            previous,
            "connection_lost",
            reason,
        ),
        EngineEvent::StreamReplaced => went_offline(
            &mut row,
            &mut set_status,
            previous,
            "stream_replaced",
            "another client connected with this session",
        ),
        EngineEvent::TemporaryBan { reason, expires_in } => went_offline(
            &mut row,
            &mut set_status,
            previous,
            "temporary_ban",
            &format!(
                "temporarily banned by WhatsApp ({reason}) for {} s",
                expires_in.as_secs()
            ),
        ),
        EngineEvent::ConnectFailure { reason } => went_offline(
            &mut row,
            &mut set_status,
            previous,
            "connect_failure",
            reason,
        ),
        EngineEvent::LoggedOut { reason } => {
            set_status(&mut row, Status::LoggedOut);
            row.is_connected = Set(false);
            // The number is free for a new instance to pair.
            row.phone_number = Set(None);
            row.last_error = Set(Some(reason.clone()));
            let mut data = status_event(previous, Status::LoggedOut, "logged_out", Some(reason));
            data["phone_number"] = json!(instance.phone_number);
            data["jid"] = json!(instance.jid);
            Some((EventType::InstanceLoggedOut, data))
        }
        // Messages are tracked by `crate::messaging::tracking`, not here.
        EngineEvent::ServerAck { .. }
        | EngineEvent::Receipt { .. }
        | EngineEvent::Message(_)
        | EngineEvent::Messages { .. }
        | EngineEvent::Call(_)
        | EngineEvent::Group(_) => None,
    };
    Ok(Change {
        status,
        row,
        event: event_out,
    })
}

/// A connection-level failure: an online instance becomes `disconnected`
/// (one event); otherwise only the reason is kept.
fn went_offline(
    row: &mut ActiveModel,
    set_status: &mut impl FnMut(&mut ActiveModel, Status),
    previous: Status,
    reason: &str,
    detail: &str,
) -> Option<(EventType, Value)> {
    row.is_connected = Set(false);
    row.last_error = Set(Some(format!("{reason}: {detail}")));
    if previous != Status::Online {
        return None;
    }
    set_status(row, Status::Disconnected);
    Some((
        EventType::InstanceDisconnected,
        status_event(previous, Status::Disconnected, reason, Some(detail)),
    ))
}

/// Records the paired number unless another live instance holds it; the
/// number is unique so that sending by number names one instance.
async fn claim_number<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    phone_number: Option<&str>,
    row: &mut ActiveModel,
) -> Result<Option<String>, DbErr> {
    let Some(phone) = phone_number else {
        return Ok(None);
    };
    let holder = Entity::find()
        .filter(Column::PhoneNumber.eq(phone))
        .filter(Column::Id.ne(instance_id))
        .one(conn)
        .await?;
    match holder {
        None => {
            row.phone_number = Set(Some(phone.to_owned()));
            Ok(Some(phone.to_owned()))
        }
        Some(other) => {
            row.last_error = Set(Some(format!(
                "number {phone} is already paired on instance {}; unlink that one first",
                other.id
            )));
            Ok(None)
        }
    }
}

/// At start no session is live yet, whatever the rows say after a crash or
/// a stop: online instances become disconnected until they reconnect.
pub async fn reset_connections(db: &DatabaseConnection) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Disconnected.to_value()))
        .filter(Column::Status.eq(Status::Online))
        .exec(db)
        .await?;
    Entity::update_many()
        .col_expr(Column::IsConnected, Expr::value(false))
        .filter(Column::IsConnected.eq(true))
        .exec(db)
        .await?;
    Ok(())
}

/// `reset_connections` for a cluster node: rows another node's live lease
/// covers are that node's to describe.
pub async fn reset_unleased_connections(db: &DatabaseConnection, me: Uuid) -> Result<(), DbErr> {
    let elsewhere = "NOT EXISTS (SELECT 1 FROM instance_leases l \
                       WHERE l.instance_id = instances.id AND l.lease_until > now() \
                         AND l.owner_node IS DISTINCT FROM $1)";
    for set in [
        "status = 'disconnected' WHERE status = 'online'",
        "is_connected = false WHERE is_connected",
    ] {
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            format!("UPDATE instances SET {set} AND {elsewhere}"),
            [me.into()],
        ))
        .await?;
    }
    Ok(())
}
