//! How a signed delivery leaves the gateway: one [`Transport`] per kind of
//! destination (HTTP, NATS JetStream, RabbitMQ), behind one small trait, so
//! the dispatcher, its retries and its attempt log are the same for all.

pub mod amqp;
pub mod guard;
pub mod http;
pub mod nats;
pub mod pool;

use std::time::Duration;

use async_trait::async_trait;

use super::attempt::{Job, Verdict};

/// A delivery ready to leave: the job and its Standard Webhooks headers.
pub struct Outgoing<'a> {
    pub job: &'a Job,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: &'a str,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: Verdict,
    pub status_code: Option<u16>,
    pub response_body: Option<String>,
    pub retry_after: Option<Duration>,
    /// The attempt log's `error_kind` and `error`; `None` on success.
    pub error: Option<(&'static str, String)>,
}

impl Outcome {
    pub fn succeeded() -> Self {
        Self {
            verdict: Verdict::Succeeded,
            status_code: None,
            response_body: None,
            retry_after: None,
            error: None,
        }
    }

    pub fn failed(verdict: Verdict, kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            verdict,
            error: Some((kind, msg.into())),
            ..Self::succeeded()
        }
    }

    /// Worth retrying on the schedule.
    pub fn retry(kind: &'static str, msg: impl Into<String>) -> Self {
        Self::failed(Verdict::Retry, kind, msg)
    }
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn deliver(&self, out: Outgoing<'_>) -> Outcome;
}

/// An error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let next = e.to_string();
        // Many errors repeat their source's text; once is enough.
        if !out.ends_with(&next) {
            out.push_str(": ");
            out.push_str(&next);
        }
        source = e.source();
    }
    out
}
