//! Webhook registrations (HTTP webhooks and broker sinks): create, read,
//! change, delete, secrets.

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
use super::sink::{self, Credentials, Kind, Target};
use super::transport::guard;
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
    #[error("invalid sink target: {0}")]
    InvalidTarget(String),
    /// A change that names a target of another kind than the
    /// destination's (it depends on the registration, not the request).
    #[error("kind mismatch: {0}")]
    KindMismatch(String),
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
    /// At creation only; default [`Kind::Webhook`].
    pub kind: Option<Kind>,
    /// A broker sink's target, replacing the stored one (credentials too).
    pub sink: Option<SinkSpec>,
}

/// A broker sink's target as a caller gives it.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// The broker URL, without credentials.
    pub url: String,
    pub target: Target,
    pub credentials: Credentials,
}

/// A checked sink target, ready for its columns.
struct CheckedSink {
    url: String,
    target: Value,
    credentials: Credentials,
}

/// Checks a broker URL: the kind's schemes, a host allowed by the
/// private-address policy (when an IP literal), no credentials in it.
pub fn validate_broker_url(raw: &str, kind: Kind, targets: &Targets) -> Result<Url, WebhookError> {
    if raw.len() > MAX_URL_LEN {
        return Err(WebhookError::InvalidUrl(format!(
            "longer than {MAX_URL_LEN} bytes"
        )));
    }
    let url = Url::parse(raw).map_err(|e| WebhookError::InvalidUrl(e.to_string()))?;
    let (schemes, port): (&[&str], u16) = match kind {
        Kind::Nats => (&["nats", "tls"], super::transport::nats::DEFAULT_PORT),
        Kind::Amqp => (&["amqp", "amqps"], super::transport::amqp::DEFAULT_PORT),
        Kind::Webhook => (&["http", "https"], 443),
    };
    if !schemes.contains(&url.scheme()) {
        return Err(WebhookError::InvalidUrl(format!(
            "a {} URL starts with {}",
            kind.as_str(),
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebhookError::InvalidUrl(
            "credentials go in `username`/`password`, not in the URL (they are sealed at rest)"
                .into(),
        ));
    }
    if kind == Kind::Nats && !matches!(url.path(), "" | "/") {
        return Err(WebhookError::InvalidUrl("a NATS URL has no path".into()));
    }
    match guard::check_literal(&url, targets, port) {
        Ok(_) => Ok(url),
        Err(e @ OutboundError::Blocked(_)) => Err(WebhookError::UrlNotAllowed(e.to_string())),
        Err(e) => Err(WebhookError::InvalidUrl(e.to_string())),
    }
}

fn validate_sink(spec: SinkSpec, targets: &Targets) -> Result<CheckedSink, WebhookError> {
    let kind = spec.target.kind();
    let url = validate_broker_url(&spec.url, kind, targets)?;
    let bad = WebhookError::InvalidTarget;
    let c = &spec.credentials;
    match &spec.target {
        Target::Nats(t) => {
            sink::validate_template(&t.subject, kind).map_err(bad)?;
            sink::validate_stream(&t.stream).map_err(bad)?;
            if t.create_stream && sink::stream_subject(&t.subject).is_none() {
                return Err(WebhookError::InvalidTarget(
                    "create_stream needs a subject that starts with a fixed token".into(),
                ));
            }
            if c.username.is_some() != c.password.is_some() {
                return Err(WebhookError::InvalidTarget(
                    "a NATS login needs both username and password".into(),
                ));
            }
        }
        Target::Amqp(t) => {
            sink::validate_template(&t.routing_key, kind).map_err(bad)?;
            if c.token.is_some() {
                return Err(WebhookError::InvalidTarget(
                    "AMQP logs in with username and password, not a token".into(),
                ));
            }
        }
    }
    Ok(CheckedSink {
        url: url.to_string(),
        target: serde_json::to_value(&spec.target)
            .map_err(|e| WebhookError::InvalidTarget(e.to_string()))?,
        credentials: spec.credentials,
    })
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
    let kind = changes.kind.unwrap_or(Kind::Webhook);
    let (url, sink) = match (kind, changes.sink) {
        (Kind::Webhook, None) => {
            let Some(url) = changes.url.as_deref() else {
                return Err(WebhookError::InvalidUrl("a webhook needs `url`".into()));
            };
            (validate_url(url, targets)?.to_string(), None)
        }
        (Kind::Webhook, Some(_)) => {
            return Err(WebhookError::InvalidTarget(
                "a webhook takes `url`; `nats` and `amqp` are for those kinds".into(),
            ));
        }
        (kind, Some(spec)) if spec.target.kind() == kind && changes.url.is_none() => {
            let checked = validate_sink(spec, targets)?;
            (checked.url.clone(), Some(checked))
        }
        (kind, _) => {
            return Err(WebhookError::InvalidTarget(format!(
                "a {0} sink takes its broker URL and target in `{0}`, and no `url`",
                kind.as_str()
            )));
        }
    };
    let events = validate_events(changes.events.as_deref().unwrap_or(&[]))?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let secret = signing::new_secret()?;
    let sealed = keyring.seal_text(&secret, &Context::webhook(id, WebhookSecret::Current))?;
    let (target, credentials) = match sink {
        Some(s) => (
            Some(s.target),
            sink::seal_credentials(keyring, id, &s.credentials)?,
        ),
        None => (None, None),
    };
    let row = ActiveModel {
        id: Set(id),
        instance_id: Set(scope.instance_id()),
        kind: Set(kind.as_str().to_owned()),
        target: Set(target),
        credentials: Set(credentials),
        url: Set(url),
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
    keyring: &Keyring,
    scope: Scope,
    webhook_id: Uuid,
    changes: Changes,
    targets: &Targets,
) -> Result<Webhook, WebhookError> {
    let current = get(db, scope, webhook_id).await?;
    let mut row: ActiveModel = current.clone().into();
    let kind = Kind::parse(&current.kind).unwrap_or(Kind::Webhook);
    if let Some(url) = changes.url {
        if kind != Kind::Webhook {
            return Err(WebhookError::KindMismatch(format!(
                "a {0} sink's broker URL is changed through `{0}`",
                kind.as_str()
            )));
        }
        row.url = Set(validate_url(&url, targets)?.to_string());
    }
    if let Some(spec) = changes.sink {
        if spec.target.kind() != kind {
            return Err(WebhookError::KindMismatch(format!(
                "this destination is a {}; its kind does not change",
                kind.as_str()
            )));
        }
        let checked = validate_sink(spec, targets)?;
        row.url = Set(checked.url);
        row.target = Set(Some(checked.target));
        row.credentials = Set(sink::seal_credentials(
            keyring,
            current.id,
            &checked.credentials,
        )?);
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
