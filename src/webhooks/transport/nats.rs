//! The NATS JetStream transport: a publish to the sink's subject with
//! `Nats-Msg-Id` set to the event id, so JetStream drops the duplicates a
//! retry may make; success is the stream's publish ack.

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::{ConnectErrorKind, ConnectOptions, HeaderMap};
use async_trait::async_trait;
use url::Url;

use super::pool::{Live, Pool};
use super::{Outcome, Outgoing, Transport, error_chain, guard};
use crate::outbound::Targets;
use crate::webhooks::attempt::Verdict;
use crate::webhooks::sink::{Broker, Destination, NatsTarget, Target, render, stream_subject};

pub const DEFAULT_PORT: u16 = 4222;

pub struct Conn {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Live for Conn {
    fn is_live(&self) -> bool {
        // The client reconnects by itself; while it is away deliveries fail
        // at once rather than queue in its buffer.
        self.client.connection_state() == State::Connected
    }
}

pub struct Nats {
    pub targets: Targets,
    pub timeout: Duration,
    pub pool: Pool<Conn>,
}

impl Nats {
    pub fn new(targets: Targets, timeout: Duration) -> Self {
        Self {
            targets,
            timeout,
            pool: Pool::default(),
        }
    }

    async fn connect(&self, broker: &Broker, target: &NatsTarget) -> Result<Conn, Outcome> {
        let url = Url::parse(&broker.url)
            .map_err(|e| Outcome::failed(Verdict::Failed, "invalid_url", e.to_string()))?;
        guard::check_resolved(&url, &self.targets, DEFAULT_PORT)
            .await
            .map_err(|e| Outcome::failed(Verdict::Failed, "blocked", e))?;
        let mut opts = ConnectOptions::new()
            .name(format!("wagate/{}", env!("CARGO_PKG_VERSION")))
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            // Servers a cluster advertises did not pass the address check.
            .ignore_discovered_servers()
            .require_tls(target.tls_required || url.scheme() == "tls");
        let c = &broker.credentials;
        if let Some(token) = &c.token {
            opts = opts.token(token.clone());
        }
        if let (Some(user), Some(pass)) = (&c.username, &c.password) {
            opts = opts.user_and_password(user.clone(), pass.clone());
        }
        let client = opts.connect(broker.url.as_str()).await.map_err(|e| {
            let (verdict, kind) = match e.kind() {
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    (Verdict::Failed, "auth")
                }
                ConnectErrorKind::Tls => (Verdict::Failed, "tls"),
                ConnectErrorKind::TimedOut => (Verdict::Retry, "timeout"),
                _ => (Verdict::Retry, "connect"),
            };
            Outcome::failed(
                verdict,
                kind,
                format!("connecting to NATS: {}", error_chain(&e)),
            )
        })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.timeout);
        if target.create_stream {
            let subject = stream_subject(&target.subject).unwrap_or_else(|| target.subject.clone());
            let config = jetstream::stream::Config {
                name: target.stream.clone(),
                subjects: vec![subject],
                ..Default::default()
            };
            js.get_or_create_stream(config).await.map_err(|e| {
                Outcome::retry(
                    "no_stream",
                    format!("creating stream {}: {}", target.stream, error_chain(&e)),
                )
            })?;
        }
        Ok(Conn { client, js })
    }
}

#[async_trait]
impl Transport for Nats {
    async fn deliver(&self, out: Outgoing<'_>) -> Outcome {
        let job = out.job;
        let Destination::Broker(broker) = &job.destination else {
            return Outcome::failed(Verdict::Failed, "request", "not a NATS sink");
        };
        let Target::Nats(target) = &broker.target else {
            return Outcome::failed(Verdict::Failed, "request", "not a NATS sink");
        };
        let conn = match self
            .pool
            .get(job.webhook_id, broker, || self.connect(broker, target))
            .await
        {
            Ok(conn) => conn,
            Err(outcome) => return outcome,
        };
        let subject = render(
            &target.subject,
            job.instance_id,
            &job.event_type,
            &job.event_id,
        );
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, job.event_id.as_str());
        headers.insert("content-type", "application/json");
        headers.insert("webhook-id", job.event_id.as_str());
        headers.insert("webhook-timestamp", out.timestamp.to_string());
        headers.insert("webhook-signature", out.signature);
        headers.insert("wagate-type", job.event_type.as_str());
        headers.insert("wagate-instance-id", job.instance_id.to_string());
        let published = conn
            .js
            .publish_with_headers(subject, headers, job.body.clone().into())
            .await;
        let acked = match published {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => {
                let mut outcome = Outcome::succeeded();
                outcome.response_body = Some(format!(
                    "stream {} seq {}{}",
                    ack.stream,
                    ack.sequence,
                    if ack.duplicate { " (duplicate)" } else { "" }
                ));
                outcome
            }
            Err(e) => {
                let kind = match e.kind() {
                    PublishErrorKind::StreamNotFound => "no_stream",
                    PublishErrorKind::TimedOut => "timeout",
                    PublishErrorKind::BrokenPipe => {
                        self.pool.drop_connection(job.webhook_id).await;
                        "connect"
                    }
                    PublishErrorKind::MaxPayloadExceeded => {
                        return Outcome::failed(Verdict::Failed, "rejected", error_chain(&e));
                    }
                    _ => "rejected",
                };
                Outcome::retry(kind, format!("publishing to NATS: {}", error_chain(&e)))
            }
        }
    }
}
