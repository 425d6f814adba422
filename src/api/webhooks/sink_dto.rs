//! The broker sink shapes of the webhook routes: a registration's `kind`
//! and its typed `nats` or `amqp` target. Credentials go in, never out.

use poem_openapi::{Enum, Object};

use crate::webhooks::registry::SinkSpec;
use crate::webhooks::sink::{
    self, AmqpTarget, Credentials, DEFAULT_EXCHANGE, DEFAULT_STREAM, DEFAULT_TEMPLATE, Kind,
    NatsTarget, Target,
};

/// What kind of destination a registration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "SinkKind", rename_all = "snake_case")]
pub enum SinkKind {
    /// An HTTP POST to `url`.
    Webhook,
    /// A NATS JetStream publish (target in `nats`).
    Nats,
    /// A RabbitMQ (AMQP 0-9-1) publish (target in `amqp`).
    Amqp,
}

impl From<SinkKind> for Kind {
    fn from(k: SinkKind) -> Self {
        match k {
            SinkKind::Webhook => Kind::Webhook,
            SinkKind::Nats => Kind::Nats,
            SinkKind::Amqp => Kind::Amqp,
        }
    }
}

impl From<Kind> for SinkKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Webhook => SinkKind::Webhook,
            Kind::Nats => SinkKind::Nats,
            Kind::Amqp => SinkKind::Amqp,
        }
    }
}

/// A NATS JetStream target. Each event is published to `subject` with
/// `Nats-Msg-Id` = the event id; success is the stream's publish ack.
#[derive(Debug, Object)]
#[oai(rename = "SinkNats", skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SinkNats {
    /// `nats://host[:port]` or `tls://host[:port]`, no credentials in it.
    #[oai(validator(
        max_length = 2048,
        pattern = r"^(?:nats|tls)://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?/?$"
    ))]
    pub url: String,
    /// Subject template; `{instance_id}`, `{type}` and `{event_id}` are
    /// replaced. Default `wagate.{instance_id}.{type}`.
    #[oai(validator(
        max_length = 200,
        // Each `(…)+` written as one piece then any, so that a generator
        // does not fold max_length into it.
        pattern = r"^(?:[^.\s*>{}\x00-\x1f\x7f]|\{instance_id\}|\{type\}|\{event_id\})(?:[^.\s*>{}\x00-\x1f\x7f]|\{instance_id\}|\{type\}|\{event_id\})*(?:\.(?:[^.\s*>{}\x00-\x1f\x7f]|\{instance_id\}|\{type\}|\{event_id\})(?:[^.\s*>{}\x00-\x1f\x7f]|\{instance_id\}|\{type\}|\{event_id\})*)*$"
    ))]
    pub subject: Option<String>,
    /// The stream `create_stream` makes or finds. Default `WAGATE`.
    #[oai(validator(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub stream: Option<String>,
    /// Make the stream (capturing the subject's fixed leading tokens and
    /// `>`) if it does not exist. Default false: the stream must exist, and
    /// deliveries retry (`no_stream`) until it does.
    pub create_stream: Option<bool>,
    /// Refuse a connection without TLS. Default false (`tls://` implies it).
    pub tls_required: Option<bool>,
    /// With `password`. Sealed at rest; never returned.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub username: Option<String>,
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: Option<String>,
    /// A token login instead. Sealed at rest; never returned.
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub token: Option<String>,
}

/// A RabbitMQ target. Each event is published persistent and mandatory to
/// `exchange` with a routing key from `routing_key`, on a channel in
/// confirm mode; success is the broker's confirm.
#[derive(Debug, Object)]
#[oai(rename = "SinkAmqp", skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SinkAmqp {
    /// `amqp://host[:port][/vhost]` or `amqps://…`, no credentials in it.
    #[oai(validator(
        max_length = 2048,
        pattern = r"^amqps?://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})*)?$"
    ))]
    pub url: String,
    /// Default `amq.topic`; empty is the default exchange (the routing key
    /// names a queue).
    #[oai(validator(pattern = r"^[A-Za-z0-9_.:-]{0,127}$"))]
    pub exchange: Option<String>,
    /// Routing-key template; `{instance_id}`, `{type}` and `{event_id}` are
    /// replaced. Default `wagate.{instance_id}.{type}`.
    #[oai(validator(
        max_length = 200,
        // One piece, then any: the same as `(…)+`, written so that a
        // generator does not fold max_length into it.
        pattern = r"^(?:[^{}]|\{instance_id\}|\{type\}|\{event_id\})(?:[^{}]|\{instance_id\}|\{type\}|\{event_id\})*$"
    ))]
    pub routing_key: Option<String>,
    /// Sealed at rest; never returned.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub username: Option<String>,
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: Option<String>,
}

impl From<SinkNats> for SinkSpec {
    fn from(n: SinkNats) -> Self {
        SinkSpec {
            url: n.url,
            target: Target::Nats(NatsTarget {
                subject: n.subject.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned()),
                stream: n.stream.unwrap_or_else(|| DEFAULT_STREAM.to_owned()),
                create_stream: n.create_stream.unwrap_or(false),
                tls_required: n.tls_required.unwrap_or(false),
            }),
            credentials: Credentials {
                username: n.username,
                password: n.password,
                token: n.token,
            },
        }
    }
}

impl From<SinkAmqp> for SinkSpec {
    fn from(a: SinkAmqp) -> Self {
        SinkSpec {
            url: a.url,
            target: Target::Amqp(AmqpTarget {
                exchange: a.exchange.unwrap_or_else(|| DEFAULT_EXCHANGE.to_owned()),
                routing_key: a.routing_key.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned()),
            }),
            credentials: Credentials {
                username: a.username,
                password: a.password,
                token: None,
            },
        }
    }
}

/// The one sink object a request may carry; both is an error.
pub fn spec(
    nats: Option<SinkNats>,
    amqp: Option<SinkAmqp>,
) -> Result<Option<SinkSpec>, crate::webhooks::WebhookError> {
    match (nats, amqp) {
        (Some(_), Some(_)) => Err(crate::webhooks::WebhookError::InvalidTarget(
            "give `nats` or `amqp`, not both".into(),
        )),
        (Some(n), None) => Ok(Some(n.into())),
        (None, Some(a)) => Ok(Some(a.into())),
        (None, None) => Ok(None),
    }
}

/// The sink object a change carries. A destination has one kind, so a
/// change naming both cannot match it: a conflict with the registration.
pub fn change(
    nats: Option<SinkNats>,
    amqp: Option<SinkAmqp>,
) -> Result<Option<SinkSpec>, crate::webhooks::WebhookError> {
    if nats.is_some() && amqp.is_some() {
        return Err(crate::webhooks::WebhookError::KindMismatch(
            "a destination has one kind; `nats` and `amqp` cannot both be its target".into(),
        ));
    }
    spec(nats, amqp)
}

/// A NATS sink's target as listed (the broker URL is the view's `url`).
#[derive(Debug, Object)]
#[oai(rename = "SinkNatsView")]
pub struct SinkNatsView {
    pub subject: String,
    pub stream: String,
    pub create_stream: bool,
    pub tls_required: bool,
    /// Whether a login is stored (it is never shown).
    pub credentials: bool,
}

/// An AMQP sink's target as listed (the broker URL is the view's `url`).
#[derive(Debug, Object)]
#[oai(rename = "SinkAmqpView")]
pub struct SinkAmqpView {
    pub exchange: String,
    pub routing_key: String,
    /// Whether a login is stored (it is never shown).
    pub credentials: bool,
}

/// A stored registration's kind and sink target, as listed.
pub fn view(
    kind: &str,
    target: Option<&serde_json::Value>,
    credentials: bool,
) -> (SinkKind, Option<SinkNatsView>, Option<SinkAmqpView>) {
    let kind = Kind::parse(kind).unwrap_or(Kind::Webhook);
    let target = target.and_then(|t| serde_json::from_value::<sink::Target>(t.clone()).ok());
    match target {
        Some(Target::Nats(t)) => (
            kind.into(),
            Some(SinkNatsView {
                subject: t.subject,
                stream: t.stream,
                create_stream: t.create_stream,
                tls_required: t.tls_required,
                credentials,
            }),
            None,
        ),
        Some(Target::Amqp(t)) => (
            kind.into(),
            None,
            Some(SinkAmqpView {
                exchange: t.exchange,
                routing_key: t.routing_key,
                credentials,
            }),
        ),
        None => (kind.into(), None, None),
    }
}
