use sea_orm::entity::prelude::*;

/// A destination registered to receive one instance's events (or all
/// instances'): an HTTP URL, or a broker sink.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The instance whose events it receives; `None` for a global webhook,
    /// which receives every instance's events.
    pub instance_id: Option<Uuid>,
    pub url: String,
    /// JSON array of event type names; empty means every type.
    pub events: Json,
    pub description: Option<String>,
    pub enabled: bool,
    /// Deliver one at a time, in event order.
    pub ordered: bool,
    /// `whsec_` + base64 of the HMAC key.
    pub secret: String,
    /// The secret before the last rotation; signs too until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    /// Start of the current run of failed attempts; cleared by a success.
    pub failing_since: Option<DateTimeUtc>,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTimeUtc>,
    /// `webhook` (HTTP), `nats` (JetStream) or `amqp` (RabbitMQ).
    pub kind: String,
    /// A broker sink's settings (subject, exchange, ...); nothing secret.
    pub target: Option<Json>,
    /// A broker sink's credentials as JSON, sealed like the secrets.
    pub credentials: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
