//! Webhook registrations: create, read, change, delete, secrets.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use entity::webhooks::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use super::EventType;
use super::signing::{self, SigningError};
use crate::outbound::{self, OutboundError, Targets};
use crate::sealing::context::WebhookSecret;
use crate::sealing::{Context, Keyring, SealError};

pub type Webhook = Model;

/// Whose webhooks a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One instance's own webhooks.
    Instance(Uuid),
    /// Global webhooks, which receive every instance's events.
    Global,
}

impl Scope {
    fn condition(self) -> Condition {
        match self {
            Scope::Instance(id) => Condition::all().add(Column::InstanceId.eq(id)),
            Scope::Global => Condition::all().add(Column::InstanceId.is_null()),
        }
    }

    fn instance_id(self) -> Option<Uuid> {
        match self {
            Scope::Instance(id) => Some(id),
            Scope::Global => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("instance {0} not found")]
    InstanceNotFound(Uuid),
    #[error("webhook {0} not found")]
    NotFound(Uuid),
    #[error("delivery {0} not found")]
    DeliveryNotFound(Uuid),
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    #[error("url not allowed: {0}")]
    UrlNotAllowed(String),
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error("signing: {0}")]
    Signing(#[from] SigningError),
    #[error("webhook secret at rest: {0}")]
    Sealing(#[from] SealError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

const MAX_URL_LEN: usize = 2048;

/// What a caller may set on a webhook.
#[derive(Debug, Default)]
pub struct Changes {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub ordered: Option<bool>,
}

/// Parses and checks a target URL: absolute http(s), a host, and (unless
/// private targets are allowed) not an IP literal of a private network.
pub fn validate_url(raw: &str, targets: &Targets) -> Result<Url, WebhookError> {
    if raw.len() > MAX_URL_LEN {
        return Err(WebhookError::InvalidUrl(format!(
            "longer than {MAX_URL_LEN} bytes"
        )));
    }
    let url = Url::parse(raw).map_err(|e| WebhookError::InvalidUrl(e.to_string()))?;
    match outbound::check_url(&url, targets) {
        Ok(()) => Ok(url),
        Err(e @ OutboundError::Blocked(_)) => Err(WebhookError::UrlNotAllowed(e.to_string())),
        Err(e) => Err(WebhookError::InvalidUrl(e.to_string())),
    }
}

/// Checks each name and returns the filter as stored: deduplicated, in
/// the order given.
pub fn validate_events(names: &[String]) -> Result<Value, WebhookError> {
    let mut kept: Vec<&'static str> = Vec::new();
    for name in names {
        let t =
            EventType::parse(name).ok_or_else(|| WebhookError::UnknownEventType(name.clone()))?;
        if !kept.contains(&t.as_str()) {
            kept.push(t.as_str());
        }
    }
    Ok(Value::from(kept))
}

async fn instance_exists<C: ConnectionTrait>(db: &C, scope: Scope) -> Result<(), WebhookError> {
    let Scope::Instance(instance_id) = scope else {
        return Ok(());
    };
    entity::instances::Entity::find_by_id(instance_id)
        .one(db)
        .await?
        .map(|_| ())
        .ok_or(WebhookError::InstanceNotFound(instance_id))
}

/// Registers a webhook with a new secret, sealed by `keyring`. Returns the
/// row as stored and the secret in the clear, to be shown once.
pub async fn create(
    db: &DatabaseConnection,
    keyring: &Keyring,
    scope: Scope,
    changes: Changes,
    targets: &Targets,
) -> Result<(Webhook, String), WebhookError> {
    instance_exists(db, scope).await?;
    let url = validate_url(changes.url.as_deref().unwrap_or(""), targets)?;
    let events = validate_events(changes.events.as_deref().unwrap_or(&[]))?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let secret = signing::new_secret()?;
    let sealed = keyring.seal_text(&secret, &Context::webhook(id, WebhookSecret::Current))?;
    let row = ActiveModel {
        id: Set(id),
        instance_id: Set(scope.instance_id()),
        url: Set(url.to_string()),
        events: Set(events),
        description: Set(changes.description.flatten()),
        enabled: Set(changes.enabled.unwrap_or(true)),
        ordered: Set(changes.ordered.unwrap_or(false)),
        secret: Set(sealed),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        failing_since: Set(None),
        disabled_reason: Set(None),
        disabled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Ok((Entity::insert(row).exec_with_returning(db).await?, secret))
}

pub async fn list(db: &DatabaseConnection, scope: Scope) -> Result<Vec<Webhook>, WebhookError> {
    instance_exists(db, scope).await?;
    Ok(Entity::find()
        .filter(scope.condition())
        .order_by_asc(Column::Id)
        .all(db)
        .await?)
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    webhook_id: Uuid,
) -> Result<Webhook, WebhookError> {
    let found = Entity::find_by_id(webhook_id)
        .filter(scope.condition())
        .one(db)
        .await?;
    match found {
        Some(w) => Ok(w),
        None => {
            instance_exists(db, scope).await?;
            Err(WebhookError::NotFound(webhook_id))
        }
    }
}

pub async fn update(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
    changes: Changes,
    targets: &Targets,
) -> Result<Webhook, WebhookError> {
    let current = get(db, scope, webhook_id).await?;
    let mut row: ActiveModel = current.clone().into();
    if let Some(url) = changes.url {
        row.url = Set(validate_url(&url, targets)?.to_string());
    }
    if let Some(events) = changes.events {
        row.events = Set(validate_events(&events)?);
    }
    if let Some(description) = changes.description {
        row.description = Set(description);
    }
    if let Some(ordered) = changes.ordered {
        row.ordered = Set(ordered);
    }
    if let Some(enabled) = changes.enabled {
        row.enabled = Set(enabled);
        if enabled && !current.enabled {
            // A fresh start: the failure clock and the reason go.
            row.disabled_reason = Set(None);
            row.disabled_at = Set(None);
            row.failing_since = Set(None);
        }
        if !enabled && current.enabled {
            row.disabled_reason = Set(Some("disabled through the API".into()));
            row.disabled_at = Set(Some(Utc::now()));
        }
    }
    row.updated_at = Set(Utc::now());
    Ok(Entity::update(row).exec(db).await?)
}

pub async fn delete(
    db: &DatabaseConnection,
    scope: Scope,
    webhook_id: Uuid,
) -> Result<(), WebhookError> {
    let deleted = Entity::delete_many()
        .filter(Column::Id.eq(webhook_id))
        .filter(scope.condition())
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        instance_exists(db, scope).await?;
        return Err(WebhookError::NotFound(webhook_id));
    }
    Ok(())
}

/// A webhook's secrets in the clear: the current one, and the previous one
/// while it still signs.
pub struct Secrets {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// Opens a stored webhook's secrets.
pub fn secrets(keyring: &Keyring, w: &Webhook) -> Result<Secrets, WebhookError> {
    let live = w.previous_secret_expires_at.filter(|t| *t > Utc::now());
    let previous = match (&w.previous_secret, live) {
        (Some(p), Some(_)) => Some(open_secret(keyring, w.id, WebhookSecret::Previous, p)?),
        _ => None,
    };
    Ok(Secrets {
        secret: open_secret(keyring, w.id, WebhookSecret::Current, &w.secret)?,
        previous_secret: previous,
        previous_secret_expires_at: live.filter(|_| w.previous_secret.is_some()),
    })
}

fn open_secret(
    keyring: &Keyring,
    webhook_id: Uuid,
    column: WebhookSecret,
    stored: &str,
) -> Result<String, SealError> {
    keyring.open_text(stored, &Context::webhook(webhook_id, column))
}

/// Replaces the secret; the old one keeps signing for `overlap_secs`.
/// Returns the row as stored and its secrets in the clear.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    keyring: &Keyring,
    scope: Scope,
    webhook_id: Uuid,
    overlap_secs: u64,
) -> Result<(Webhook, Secrets), WebhookError> {
    let current = get(db, scope, webhook_id).await?;
    let now = Utc::now();
    let overlap = ChronoDuration::seconds(i64::try_from(overlap_secs).unwrap_or(i64::MAX / 1000));
    let mut row: ActiveModel = current.clone().into();
    let secret = signing::new_secret()?;
    row.secret = Set(keyring.seal_text(
        &secret,
        &Context::webhook(webhook_id, WebhookSecret::Current),
    )?);
    if overlap_secs > 0 {
        // Sealing binds a value to its column: the old secret is opened and
        // sealed again as the previous one (with the current key, too).
        let old = open_secret(keyring, webhook_id, WebhookSecret::Current, &current.secret)?;
        row.previous_secret = Set(Some(
            keyring.seal_text(&old, &Context::webhook(webhook_id, WebhookSecret::Previous))?,
        ));
        row.previous_secret_expires_at = Set(now.checked_add_signed(overlap));
    } else {
        row.previous_secret = Set(None);
        row.previous_secret_expires_at = Set(None);
    }
    row.updated_at = Set(now);
    let stored = Entity::update(row).exec(db).await?;
    let secrets = secrets(keyring, &stored)?;
    Ok((stored, secrets))
}

/// The secrets that sign a delivery now: the current one, then the previous
/// one while its overlap lasts, opened with `keyring`.
pub fn live_secrets(
    keyring: &Keyring,
    webhook_id: Uuid,
    secret: &str,
    previous: Option<&str>,
    previous_until: Option<DateTime<Utc>>,
) -> Result<Vec<String>, SealError> {
    let mut out = vec![open_secret(
        keyring,
        webhook_id,
        WebhookSecret::Current,
        secret,
    )?];
    if let (Some(prev), Some(until)) = (previous, previous_until)
        && until > Utc::now()
    {
        out.push(open_secret(
            keyring,
            webhook_id,
            WebhookSecret::Previous,
            prev,
        )?);
    }
    Ok(out)
}

/// Disables a webhook with a reason (410, or failing too long). Returns
/// whether this call disabled it (false if it already was).
pub async fn disable<C: ConnectionTrait>(
    db: &C,
    webhook_id: Uuid,
    reason: &str,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let res = Entity::update_many()
        .col_expr(Column::Enabled, Expr::value(false))
        .col_expr(Column::DisabledReason, Expr::value(reason.to_owned()))
        .col_expr(Column::DisabledAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(webhook_id))
        .filter(Column::Enabled.eq(true))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
