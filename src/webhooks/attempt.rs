//! One HTTP attempt of one delivery: sign, POST, classify.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use url::Url;
use uuid::Uuid;

use super::retry::parse_retry_after;
use super::signing;
use crate::outbound;

/// Everything needed to make an attempt, loaded when it was claimed.
#[derive(Clone)]
pub struct Job {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub instance_id: Uuid,
    pub event_id: String,
    /// 1-based number of this attempt in the delivery's current run.
    pub attempt: i32,
    pub url: String,
    /// The secrets that sign it, or why they could not be opened.
    pub secrets: Result<Vec<String>, String>,
    pub body: Vec<u8>,
    /// When this dispatcher's claim on the delivery runs out.
    pub lease_until: DateTime<Utc>,
}

// Secrets stay out of debug output.
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
    /// Worth retrying (timeout, connection error, 3xx, 408, 429, 5xx).
    Retry,
    /// Not worth retrying (other 4xx, a blocked or invalid target).
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

pub struct Attempter {
    pub client: reqwest::Client,
    pub targets: outbound::Targets,
    pub max_body: usize,
}

impl Attempter {
    pub async fn run(&self, job: Job) -> AttemptResult {
        let started_at = Utc::now();
        let clock = Instant::now();
        let mut result = AttemptResult {
            job,
            started_at,
            duration: Duration::ZERO,
            status_code: None,
            response_body: None,
            error_kind: None,
            error: None,
            retry_after: None,
            verdict: Verdict::Failed,
        };
        if let Err((kind, msg)) = self.send(&mut result).await {
            result.error_kind = Some(kind);
            result.error = Some(msg);
        }
        result.duration = clock.elapsed();
        result
    }

    async fn send(&self, r: &mut AttemptResult) -> Result<(), (&'static str, String)> {
        let url = Url::parse(&r.job.url).map_err(|e| ("invalid_url", e.to_string()))?;
        outbound::check_url(&url, &self.targets).map_err(|e| ("blocked", e.to_string()))?;
        let secrets = match &r.job.secrets {
            Ok(secrets) => secrets,
            Err(e) => {
                // A key missing from the settings can be put back: retry.
                let msg = e.clone();
                r.verdict = Verdict::Retry;
                return Err(("secret_unavailable", msg));
            }
        };
        let timestamp = Utc::now().timestamp();
        let signature = signing::signature_header(
            secrets.iter().map(String::as_str),
            &r.job.event_id,
            timestamp,
            &r.job.body,
        )
        .map_err(|e| ("signing", e.to_string()))?;

        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &r.job.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(r.job.body.clone())
            .send()
            .await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let kind = if outbound::is_blocked(&e) {
                    r.verdict = Verdict::Failed;
                    "blocked"
                } else {
                    r.verdict = Verdict::Retry;
                    if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect"
                    } else {
                        "request"
                    }
                };
                return Err((kind, error_chain(&e)));
            }
        };
        let status = resp.status();
        r.status_code = Some(status.as_u16());
        r.retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);

        // The body, up to the limit; the client's timeout covers reading it.
        let mut body = Vec::new();
        let mut body_error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_body.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= self.max_body {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        r.response_body = Some(String::from_utf8_lossy(&body).into_owned());

        r.verdict = classify(status);
        if let Some(e) = body_error
            && e.is_timeout()
        {
            // Answering 2xx but not finishing the body within the timeout
            // is still a timeout.
            r.verdict = Verdict::Retry;
            return Err(("timeout", error_chain(&e)));
        }
        match r.verdict {
            Verdict::Succeeded => Ok(()),
            _ if status.is_redirection() => Err((
                "redirect",
                format!("answered {status}; redirects are not followed"),
            )),
            _ => Err(("status", format!("answered {status}"))),
        }
    }
}

pub fn classify(status: StatusCode) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Succeeded,
        410 => Verdict::Gone,
        300..=399 | 408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Failed,
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let v = |c: u16| classify(StatusCode::from_u16(c).expect("status"));
        assert_eq!(v(200), Verdict::Succeeded);
        assert_eq!(v(204), Verdict::Succeeded);
        assert_eq!(v(301), Verdict::Retry);
        assert_eq!(v(429), Verdict::Retry);
        assert_eq!(v(503), Verdict::Retry);
        assert_eq!(v(410), Verdict::Gone);
        assert_eq!(v(400), Verdict::Failed);
        assert_eq!(v(404), Verdict::Failed);
    }
}
