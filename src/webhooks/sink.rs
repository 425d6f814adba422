//! Broker sinks: the kinds of destination a registration has, a sink's
//! target as stored (nothing secret) and its credentials (sealed), and the
//! subject and routing-key templates.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::sealing::context::WebhookSecret;
use crate::sealing::{Context, Keyring, SealError};

/// The subject (NATS) and routing key (AMQP) unless one is given.
pub const DEFAULT_TEMPLATE: &str = "wagate.{instance_id}.{type}";
/// The stream `create_stream` makes unless one is named.
pub const DEFAULT_STREAM: &str = "WAGATE";
/// The exchange AMQP sinks publish to unless one is named: RabbitMQ has it
/// on every virtual host.
pub const DEFAULT_EXCHANGE: &str = "amq.topic";
const PLACEHOLDERS: [&str; 3] = ["{instance_id}", "{type}", "{event_id}"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Nats,
    Amqp,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Nats => "nats",
            Kind::Amqp => "amqp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Kind::Webhook),
            "nats" => Some(Kind::Nats),
            "amqp" => Some(Kind::Amqp),
            _ => None,
        }
    }
}

/// Where a NATS sink publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsTarget {
    pub subject: String,
    /// The stream `create_stream` makes (or finds).
    pub stream: String,
    pub create_stream: bool,
    pub tls_required: bool,
}

/// Where an AMQP sink publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmqpTarget {
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Nats(NatsTarget),
    Amqp(AmqpTarget),
}

impl Target {
    pub fn kind(&self) -> Kind {
        match self {
            Target::Nats(_) => Kind::Nats,
            Target::Amqp(_) => Kind::Amqp,
        }
    }
}

/// A broker login. Never logged, never listed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A NATS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.username.is_none() && self.password.is_none() && self.token.is_none()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

/// Everything a transport needs to reach one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// The broker URL, without credentials.
    pub url: String,
    pub target: Target,
    pub credentials: Credentials,
}

/// Where a job goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An HTTP POST to the job's URL.
    Http,
    Broker(Arc<Broker>),
    /// A sink whose stored target or credentials cannot be read (a key
    /// missing from the settings, say): retried, like an unopened secret.
    Unreadable(String),
}

/// Seals credentials for the `credentials` column; `None` when empty.
pub fn seal_credentials(
    keyring: &Keyring,
    webhook_id: Uuid,
    credentials: &Credentials,
) -> Result<Option<String>, SealError> {
    if credentials.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(credentials).unwrap_or_default();
    keyring
        .seal_text(
            &json,
            &Context::webhook(webhook_id, WebhookSecret::Credentials),
        )
        .map(Some)
}

/// The destination of a stored registration's jobs.
pub fn destination(
    keyring: &Keyring,
    webhook_id: Uuid,
    kind: &str,
    url: &str,
    target: Option<&Value>,
    credentials: Option<&str>,
) -> Destination {
    match Kind::parse(kind) {
        Some(Kind::Webhook) => return Destination::Http,
        None => return Destination::Unreadable(format!("unknown destination kind `{kind}`")),
        Some(_) => {}
    }
    let target: Target = match target.map(|t| serde_json::from_value(t.clone())) {
        Some(Ok(t)) => t,
        Some(Err(e)) => return Destination::Unreadable(format!("stored target: {e}")),
        None => return Destination::Unreadable("the sink has no stored target".into()),
    };
    let credentials = match credentials {
        None => Credentials::default(),
        Some(sealed) => {
            let opened = keyring.open_text(
                sealed,
                &Context::webhook(webhook_id, WebhookSecret::Credentials),
            );
            match opened.map(|json| serde_json::from_str::<Credentials>(&json)) {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Destination::Unreadable(format!("stored credentials: {e}")),
                Err(e) => return Destination::Unreadable(format!("credentials at rest: {e}")),
            }
        }
    };
    Destination::Broker(Arc::new(Broker {
        url: url.to_owned(),
        target,
        credentials,
    }))
}

/// A subject or routing key for one event.
pub fn render(template: &str, instance_id: Uuid, event_type: &str, event_id: &str) -> String {
    template
        .replace("{instance_id}", &instance_id.to_string())
        .replace("{type}", event_type)
        .replace("{event_id}", event_id)
}

/// Checks a template: at most 255 bytes, placeholders only of the known
/// ones, and (rendered) a valid NATS subject or AMQP routing key.
pub fn validate_template(template: &str, kind: Kind) -> Result<(), String> {
    if template.is_empty() || template.len() > 200 {
        return Err("a template has 1 to 200 bytes".into());
    }
    let mut rest = template.to_owned();
    for p in PLACEHOLDERS {
        rest = rest.replace(p, "x");
    }
    if rest.contains('{') || rest.contains('}') {
        return Err(format!(
            "unknown placeholder in `{template}`; known: {}",
            PLACEHOLDERS.join(", ")
        ));
    }
    if kind == Kind::Nats {
        let bad_char = rest
            .chars()
            .any(|c| c.is_whitespace() || c == '*' || c == '>' || c.is_control());
        if bad_char || rest.split('.').any(str::is_empty) {
            return Err(format!(
                "`{template}` is no NATS subject: dot-separated non-empty tokens, \
                 no spaces or wildcards"
            ));
        }
    }
    Ok(())
}

/// The subjects a stream made for `template` captures: its fixed leading
/// tokens and `>`. `None` when the template starts with a placeholder.
pub fn stream_subject(template: &str) -> Option<String> {
    let fixed: Vec<&str> = template
        .split('.')
        .take_while(|t| !t.contains('{'))
        .collect();
    if fixed.is_empty() || fixed.len() == template.split('.').count() {
        // A template without placeholders is its own subject.
        return (!fixed.is_empty()).then(|| template.to_owned());
    }
    Some(format!("{}.>", fixed.join(".")))
}

/// Checks a stream name as JetStream takes it.
pub fn validate_stream(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is no stream name: 1 to 64 of A-Z a-z 0-9 _ -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let id = Uuid::nil();
        assert_eq!(
            render(DEFAULT_TEMPLATE, id, "message.sent", "msg_1"),
            format!("wagate.{id}.message.sent")
        );
        assert!(validate_template(DEFAULT_TEMPLATE, Kind::Nats).is_ok());
        assert!(validate_template("a.{nope}", Kind::Nats).is_err());
        assert!(validate_template("a..b", Kind::Nats).is_err());
        assert!(validate_template("a.*", Kind::Nats).is_err());
        assert!(validate_template("a b", Kind::Amqp).is_ok());
        assert_eq!(
            stream_subject(DEFAULT_TEMPLATE).as_deref(),
            Some("wagate.>")
        );
        assert_eq!(stream_subject("{type}"), None);
        assert_eq!(stream_subject("a.b").as_deref(), Some("a.b"));
        assert!(validate_stream("WAGATE").is_ok());
        assert!(validate_stream("a.b").is_err());
    }

    #[test]
    fn credentials_stay_out_of_debug() {
        let c = Credentials {
            password: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
