//! Persistence of instances. Every write that the rules forbid in some state
//! is a single conditional statement, so two requests cannot race past it.

use chrono::Utc;
use entity::instances::{self, ActiveModel, Column, Entity, Status};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::Instance;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("instance {0} not found")]
    NotFound(Uuid),
    #[error("instance {0} is online; log it out before deleting it")]
    Online(Uuid),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// One page of a listing, oldest first, and the cursor of the next page.
pub struct Page {
    pub items: Vec<Instance>,
    pub next_after: Option<Uuid>,
}

pub async fn create(db: &DatabaseConnection, name: Option<String>) -> Result<Instance, DbErr> {
    let now = Utc::now();
    let row = ActiveModel {
        // v7 ids sort by creation time, which is what makes the list cursor work.
        id: Set(Uuid::now_v7()),
        name: Set(name),
        phone_number: Set(None),
        jid: Set(None),
        status: Set(Status::Created),
        is_connected: Set(false),
        last_connected_at: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        reject_calls: Set(false),
        call_reply: Set(None),
        auto_read: Set(false),
        ignore_groups: Set(false),
    };
    Entity::insert(row).exec_with_returning(db).await
}

pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<Instance, InstanceError> {
    Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(InstanceError::NotFound(id))
}

/// A page of instances; `only`, when given, restricts it to those ids.
pub async fn list(
    db: &DatabaseConnection,
    status: Option<Status>,
    only: Option<Vec<Uuid>>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Page, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Id);
    if let Some(only) = only {
        query = query.filter(Column::Id.is_in(only));
    }
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    // One row past the page tells whether another page exists.
    let mut items = query.limit(limit + 1).all(db).await?;
    let next_after = if items.len() as u64 > limit {
        items.truncate(limit as usize);
        items.last().map(|i| i.id)
    } else {
        None
    };
    Ok(Page { items, next_after })
}

pub async fn rename(
    db: &DatabaseConnection,
    id: Uuid,
    name: Option<String>,
) -> Result<Instance, InstanceError> {
    let updated = Entity::update_many()
        .col_expr(Column::Name, Expr::value(name))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(InstanceError::NotFound(id));
    }
    get(db, id).await
}

/// Changes to an instance's conversation settings; `None` leaves one as
/// it is (`call_reply: Some(None)` removes the text).
#[derive(Debug, Default)]
pub struct Settings {
    pub reject_calls: Option<bool>,
    pub call_reply: Option<Option<String>>,
    pub auto_read: Option<bool>,
    pub ignore_groups: Option<bool>,
}

impl Settings {
    pub fn is_empty(&self) -> bool {
        self.reject_calls.is_none()
            && self.call_reply.is_none()
            && self.auto_read.is_none()
            && self.ignore_groups.is_none()
    }
}

pub async fn configure(
    db: &DatabaseConnection,
    id: Uuid,
    settings: Settings,
) -> Result<Instance, InstanceError> {
    let mut update = Entity::update_many()
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id));
    if let Some(reject) = settings.reject_calls {
        update = update.col_expr(Column::RejectCalls, Expr::value(reject));
    }
    if let Some(reply) = settings.call_reply {
        update = update.col_expr(Column::CallReply, Expr::value(reply));
    }
    if let Some(auto_read) = settings.auto_read {
        update = update.col_expr(Column::AutoRead, Expr::value(auto_read));
    }
    if let Some(ignore) = settings.ignore_groups {
        update = update.col_expr(Column::IgnoreGroups, Expr::value(ignore));
    }
    if update.exec(db).await?.rows_affected == 0 {
        return Err(InstanceError::NotFound(id));
    }
    get(db, id).await
}

/// Deletes an instance unless it is online.
pub async fn delete(db: &DatabaseConnection, id: Uuid) -> Result<(), InstanceError> {
    let deleted = Entity::delete_many()
        .filter(Column::Id.eq(id))
        .filter(Column::Status.ne(Status::Online))
        .exec(db)
        .await?;
    if deleted.rows_affected == 1 {
        return Ok(());
    }
    match Entity::find_by_id(id).one(db).await? {
        Some(instances::Model { .. }) => Err(InstanceError::Online(id)),
        None => Err(InstanceError::NotFound(id)),
    }
}

/// Notes why something failed, without touching the status.
pub async fn record_error(db: &DatabaseConnection, id: Uuid, error: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastError, Expr::value(error))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
