//! Reading tracked messages back.

use entity::messages::{Column, Entity, Model};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

pub async fn get(
    db: &DatabaseConnection,
    instance_id: Uuid,
    message_id: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::WaMessageId.eq(message_id))
        .one(db)
        .await
}

/// Oldest first, after the row `after` (a previous page's cursor); one row
/// past the page tells whether another page exists.
pub async fn list(
    db: &DatabaseConnection,
    instance_id: Uuid,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<Model>, Option<Uuid>), DbErr> {
    let mut query = Entity::find()
        .filter(Column::InstanceId.eq(instance_id))
        .order_by_asc(Column::Id);
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    let mut rows = query.limit(limit + 1).all(db).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|m| m.id)
    } else {
        None
    };
    Ok((rows, next))
}
