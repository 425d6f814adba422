//! The HTTP transport: a POST with the Standard Webhooks headers; any 2xx
//! within the timeout is success.

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use url::Url;

use super::{Outcome, Outgoing, Transport, error_chain};
use crate::outbound;
use crate::webhooks::attempt::Verdict;
use crate::webhooks::retry::parse_retry_after;

pub struct Http {
    pub client: reqwest::Client,
    pub targets: outbound::Targets,
    /// The most of a response body kept in the attempt log.
    pub max_body: usize,
}

#[async_trait]
impl Transport for Http {
    async fn deliver(&self, out: Outgoing<'_>) -> Outcome {
        let job = out.job;
        let url = match Url::parse(&job.url) {
            Ok(url) => url,
            Err(e) => return Outcome::failed(Verdict::Failed, "invalid_url", e.to_string()),
        };
        if let Err(e) = outbound::check_url(&url, &self.targets) {
            return Outcome::failed(Verdict::Failed, "blocked", e.to_string());
        }
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &job.event_id)
            .header("webhook-timestamp", out.timestamp.to_string())
            .header("webhook-signature", out.signature)
            .body(job.body.clone())
            .send()
            .await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                if outbound::is_blocked(&e) {
                    return Outcome::failed(Verdict::Failed, "blocked", error_chain(&e));
                }
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                return Outcome::retry(kind, error_chain(&e));
            }
        };
        let status = resp.status();
        let retry_after = resp
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
        let mut outcome = Outcome {
            verdict: classify(status),
            status_code: Some(status.as_u16()),
            response_body: Some(String::from_utf8_lossy(&body).into_owned()),
            retry_after,
            error: None,
        };
        if let Some(e) = body_error
            && e.is_timeout()
        {
            // Answering 2xx but not finishing the body within the timeout
            // is still a timeout.
            outcome.verdict = Verdict::Retry;
            outcome.error = Some(("timeout", error_chain(&e)));
            return outcome;
        }
        outcome.error = match outcome.verdict {
            Verdict::Succeeded => None,
            _ if status.is_redirection() => Some((
                "redirect",
                format!("answered {status}; redirects are not followed"),
            )),
            _ => Some(("status", format!("answered {status}"))),
        };
        outcome
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
