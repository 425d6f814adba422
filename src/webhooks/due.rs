//! The due queue (`webhook_due`): one small row per open delivery, with its
//! schedule and its lease, and nothing else.
//!
//! A delivery is open (`pending` or `delivering`) exactly while its row is
//! here. The claim reads and leases rows here; `webhook_deliveries` keeps
//! the delivery's status and history, and no index of that large table
//! covers a column a status change writes, so on PostgreSQL those updates
//! stay on their page (HOT) and add no index entries.
//!
//! Every change that opens, closes or releases a delivery writes its due
//! row first and its delivery second, in the same transaction, as the
//! claim does: concurrent transactions never lock the two crosswise.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::webhook_deliveries::{self, Status};
use entity::webhook_due::{self, Column, Entity};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter};
use uuid::Uuid;

/// Most ids in one `IN (…)` list.
const CHUNK: usize = 500;

/// Closes the deliveries among `ids` still leased to `token` (they
/// succeeded, failed or went dead): their rows leave the queue. Returns
/// the ids that were closed; the others were reclaimed meanwhile.
pub(super) async fn close<C: ConnectionTrait>(
    conn: &C,
    token: Uuid,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut closed = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows = Entity::delete_many()
            .filter(Column::ClaimToken.eq(token))
            .filter(Column::DeliveryId.is_in(chunk.iter().copied()))
            .exec_with_returning(conn)
            .await?;
        closed.extend(rows.into_iter().map(|r| r.delivery_id));
    }
    Ok(closed)
}

/// A delivery leased to `token` is to be tried again at `at`: its row goes
/// back to waiting. Whether it was still leased to `token`.
pub(super) async fn reschedule<C: ConnectionTrait>(
    conn: &C,
    token: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let updated = unleased()
        .col_expr(Column::NextAttemptAt, Expr::value(at))
        .filter(Column::DeliveryId.eq(id))
        .filter(Column::ClaimToken.eq(token))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Which leases to end.
pub(super) enum Leases<'a> {
    /// Those that ran out before this instant (their dispatcher died).
    ExpiredBefore(DateTime<Utc>),
    /// This dispatcher's, all of them or the listed ones.
    Of(Uuid, Option<&'a [Uuid]>),
}

/// Ends leases: the deliveries become pending again, due at once for any
/// dispatcher. Returns how many.
pub(super) async fn unlease<C: ConnectionTrait>(conn: &C, which: Leases<'_>) -> Result<u64, DbErr> {
    let mut ids = Vec::new();
    match which {
        Leases::ExpiredBefore(now) => {
            ids = ended(conn, Column::LockedUntil.lt(now)).await?;
        }
        Leases::Of(token, None) => {
            ids = ended(conn, Column::ClaimToken.eq(token)).await?;
        }
        Leases::Of(token, Some(only)) => {
            for chunk in only.chunks(CHUNK) {
                let cond = Column::ClaimToken
                    .eq(token)
                    .and(Column::DeliveryId.is_in(chunk.iter().copied()));
                ids.extend(ended(conn, cond).await?);
            }
        }
    }
    let mut n = 0;
    for chunk in ids.chunks(CHUNK) {
        use webhook_deliveries::Column as D;
        n += webhook_deliveries::Entity::update_many()
            .col_expr(D::Status, Expr::value(Status::Pending))
            .col_expr(D::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(D::ClaimToken, Expr::value(Option::<Uuid>::None))
            .filter(D::Id.is_in(chunk.iter().copied()))
            .filter(D::Status.eq(Status::Delivering))
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(n)
}

/// Unleases the leased rows matching `cond`; returns their ids.
async fn ended<C: ConnectionTrait>(
    conn: &C,
    cond: sea_orm::sea_query::SimpleExpr,
) -> Result<Vec<Uuid>, DbErr> {
    Ok(unleased()
        .filter(Column::ClaimToken.is_not_null())
        .filter(cond)
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(|r| r.delivery_id)
        .collect())
}

fn unleased() -> sea_orm::UpdateMany<Entity> {
    Entity::update_many()
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::ClaimToken, Expr::value(Option::<Uuid>::None))
}

/// Puts closed deliveries back in the queue, due at `at` (a replay or a
/// recovery; their delivery rows are made pending by the caller).
pub(super) async fn reopen<C: ConnectionTrait>(
    conn: &C,
    deliveries: &[webhook_deliveries::Model],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    use sea_orm::ActiveValue::Set;
    for chunk in deliveries.chunks(CHUNK) {
        let rows = chunk.iter().map(|d| webhook_due::ActiveModel {
            delivery_id: Set(d.id),
            webhook_id: Set(d.webhook_id),
            event_id: Set(d.event_id.clone()),
            next_attempt_at: Set(at),
            locked_until: Set(None),
            claim_token: Set(None),
        });
        Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// How many deliveries are due now: waiting and due, or leased by a
/// process whose lease ran out (a crashed one).
pub async fn count_due<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    use sea_orm::{Condition, PaginatorTrait};
    let now = Utc::now();
    Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(Column::ClaimToken.is_null())
                        .add(Column::NextAttemptAt.lte(now)),
                )
                .add(Column::LockedUntil.lt(now)),
        )
        .count(conn)
        .await
}
