//! One attempt of one delivery: sign, hand to the destination's transport,
//! record how it went.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::signing;
use super::sink::{Destination, Target};
use super::transport::{self, Outcome, Outgoing, Transport};

/// Everything needed to make an attempt, loaded when it was claimed.
#[derive(Clone)]
pub struct Job {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub instance_id: Uuid,
    pub event_id: String,
    pub event_type: String,
    /// 1-based number of this attempt in the delivery's current run.
    pub attempt: i32,
    /// The webhook URL, or a sink's broker URL (without credentials).
    pub url: String,
    pub destination: Destination,
    /// The secrets that sign it, or why they could not be opened.
    pub secrets: Result<Vec<String>, String>,
    pub body: Vec<u8>,
    /// When this dispatcher's claim on the delivery runs out.
    pub lease_until: DateTime<Utc>,
    /// Handed over by the transaction that recorded its event, not claimed
    /// (never an ordered webhook's, never one with due rows waiting).
    pub handed_off: bool,
}

// Secrets and credentials stay out of debug output.
impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("delivery_id", &self.delivery_id)
            .field("webhook_id", &self.webhook_id)
            .field("event_id", &self.event_id)
            .field("attempt", &self.attempt)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended, as far as the retry policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Worth retrying (timeout, connection error, 3xx, 408, 429, 5xx, a
    /// broker that is down or did not confirm).
    Retry,
    /// Not worth retrying (other 4xx, a blocked or invalid target, a
    /// refused broker login).
    Failed,
    /// 410: the receiver says the endpoint is gone; disable it.
    Gone,
}

#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub job: Job,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub status_code: Option<u16>,
    pub response_body: Option<String>,
    pub error_kind: Option<&'static str>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub verdict: Verdict,
}

/// The transports, one per kind of destination.
pub struct Attempter {
    pub http: transport::http::Http,
    pub nats: transport::nats::Nats,
    pub amqp: transport::amqp::Amqp,
}

impl Attempter {
    pub async fn run(&self, job: Job) -> AttemptResult {
        let started_at = Utc::now();
        let clock = Instant::now();
        let outcome = self.attempt(&job).await;
        let (error_kind, error) = match outcome.error {
            Some((kind, msg)) => (Some(kind), Some(msg)),
            None => (None, None),
        };
        AttemptResult {
            job,
            started_at,
            duration: clock.elapsed(),
            status_code: outcome.status_code,
            response_body: outcome.response_body,
            error_kind,
            error,
            retry_after: outcome.retry_after,
            verdict: outcome.verdict,
        }
    }

    async fn attempt(&self, job: &Job) -> Outcome {
        let secrets = match &job.secrets {
            Ok(secrets) => secrets,
            // A key missing from the settings can be put back: retry.
            Err(e) => return Outcome::retry("secret_unavailable", e.clone()),
        };
        let transport: &dyn Transport = match &job.destination {
            Destination::Http => &self.http,
            Destination::Broker(b) => match b.target {
                Target::Nats(_) => &self.nats,
                Target::Amqp(_) => &self.amqp,
            },
            Destination::Unreadable(e) => {
                return Outcome::retry("secret_unavailable", e.clone());
            }
        };
        let timestamp = Utc::now().timestamp();
        let signature = match signing::signature_header(
            secrets.iter().map(String::as_str),
            &job.event_id,
            timestamp,
            &job.body,
        ) {
            Ok(s) => s,
            Err(e) => {
                return Outcome::failed(Verdict::Failed, "signing", e.to_string());
            }
        };
        transport
            .deliver(Outgoing {
                job,
                timestamp,
                signature: &signature,
            })
            .await
    }
}
