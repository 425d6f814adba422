//! The AMQP 0-9-1 (RabbitMQ) transport: a persistent, mandatory publish to
//! the sink's exchange on a channel in confirm mode; success is the
//! broker's confirm. `message_id` is the event id, and the Standard
//! Webhooks headers travel as message headers.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use url::Url;

use super::pool::{Live, Pool};
use super::{Outcome, Outgoing, Transport, error_chain, guard};
use crate::outbound::Targets;
use crate::webhooks::attempt::Verdict;
use crate::webhooks::sink::{Broker, Destination, Target, render};

pub const DEFAULT_PORT: u16 = 5672;
const PERSISTENT: u8 = 2;

pub struct Conn {
    connection: Connection,
    channel: Channel,
}

impl Live for Conn {
    fn is_live(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

pub struct Amqp {
    pub targets: Targets,
    pub timeout: Duration,
    pub pool: Pool<Conn>,
}

/// A refused login reads the same in every lapin error that carries it.
fn is_auth(text: &str) -> bool {
    text.contains("ACCESS_REFUSED") || text.contains("ACCESS-REFUSED")
}

impl Amqp {
    pub fn new(targets: Targets, timeout: Duration) -> Self {
        Self {
            targets,
            timeout,
            pool: Pool::default(),
        }
    }

    async fn connect(&self, broker: &Broker) -> Result<Conn, Outcome> {
        let url = Url::parse(&broker.url)
            .map_err(|e| Outcome::failed(Verdict::Failed, "invalid_url", e.to_string()))?;
        let default_port = if url.scheme() == "amqps" {
            5671
        } else {
            DEFAULT_PORT
        };
        guard::check_resolved(&url, &self.targets, default_port)
            .await
            .map_err(|e| Outcome::failed(Verdict::Failed, "blocked", e))?;
        let mut uri = AMQPUri::from_str(&broker.url)
            .map_err(|e| Outcome::failed(Verdict::Failed, "invalid_url", e))?;
        let c = &broker.credentials;
        if c.username.is_some() || c.password.is_some() {
            uri.authority.userinfo = AMQPUserInfo {
                username: c.username.clone().unwrap_or_default(),
                password: c.password.clone().unwrap_or_default(),
            };
        }
        let connect = async {
            let connection = Connection::connect_uri(uri, ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>(Conn {
                connection,
                channel,
            })
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Err(_) => Err(Outcome::retry(
                "timeout",
                format!("connecting to AMQP: no answer within {:?}", self.timeout),
            )),
            Ok(Err(e)) => {
                let text = format!("connecting to AMQP: {}", error_chain(&e));
                if is_auth(&text) {
                    Err(Outcome::failed(Verdict::Failed, "auth", text))
                } else {
                    Err(Outcome::retry("connect", text))
                }
            }
            Ok(Ok(conn)) => Ok(conn),
        }
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_owned()))
}

#[async_trait]
impl Transport for Amqp {
    async fn deliver(&self, out: Outgoing<'_>) -> Outcome {
        let job = out.job;
        let Destination::Broker(broker) = &job.destination else {
            return Outcome::failed(Verdict::Failed, "request", "not an AMQP sink");
        };
        let Target::Amqp(target) = &broker.target else {
            return Outcome::failed(Verdict::Failed, "request", "not an AMQP sink");
        };
        let conn = match self
            .pool
            .get(job.webhook_id, broker, || self.connect(broker))
            .await
        {
            Ok(conn) => conn,
            Err(outcome) => return outcome,
        };
        let routing_key = render(
            &target.routing_key,
            job.instance_id,
            &job.event_type,
            &job.event_id,
        );
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("webhook-id".to_owned()),
            text(&job.event_id),
        );
        headers.insert(
            ShortString::from("webhook-timestamp".to_owned()),
            text(&out.timestamp.to_string()),
        );
        headers.insert(
            ShortString::from("webhook-signature".to_owned()),
            text(out.signature),
        );
        headers.insert(ShortString::from("type".to_owned()), text(&job.event_type));
        headers.insert(
            ShortString::from("instance_id".to_owned()),
            text(&job.instance_id.to_string()),
        );
        let properties = BasicProperties::default()
            .with_message_id(ShortString::from(job.event_id.clone()))
            .with_content_type(ShortString::from("application/json".to_owned()))
            .with_delivery_mode(PERSISTENT)
            .with_timestamp(u64::try_from(out.timestamp).unwrap_or_default())
            .with_type(ShortString::from(job.event_type.clone()))
            .with_app_id(ShortString::from("wagate".to_owned()))
            .with_headers(headers);
        let publish = async {
            conn.channel
                .basic_publish(
                    ShortString::from(target.exchange.clone()),
                    ShortString::from(routing_key.clone()),
                    // Unroutable messages come back instead of vanishing.
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &job.body,
                    properties,
                )
                .await?
                .await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Err(_) => {
                self.pool.drop_connection(job.webhook_id).await;
                Outcome::retry(
                    "timeout",
                    format!("no publisher confirm within {:?}", self.timeout),
                )
            }
            Ok(Err(e)) => {
                self.pool.drop_connection(job.webhook_id).await;
                let text = format!("publishing to AMQP: {}", error_chain(&e));
                if is_auth(&text) {
                    Outcome::failed(Verdict::Failed, "auth", text)
                } else {
                    Outcome::retry("connect", text)
                }
            }
            Ok(Ok(Confirmation::Ack(None))) => Outcome::succeeded(),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Outcome::retry(
                "unroutable",
                format!(
                    "exchange `{}` routed `{routing_key}` to no queue",
                    target.exchange
                ),
            ),
            Ok(Ok(Confirmation::Nack(_))) => {
                Outcome::retry("rejected", "the broker did not take the message (nack)")
            }
            Ok(Ok(Confirmation::NotRequested)) => {
                self.pool.drop_connection(job.webhook_id).await;
                Outcome::retry("rejected", "the channel is not in confirm mode")
            }
        }
    }
}
