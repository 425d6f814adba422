//! Per-key rate limit: a token bucket for each presented API key (by
//! digest, so keys are not kept in memory in clear), whichever header
//! carries it. Past it: 429 with `Retry-After`. Probes are never limited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Shared limiter state; installed as request data.
#[derive(Clone)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<[u8; 32], Bucket>>>,
}

impl RateLimiter {
    /// `per_sec` of 0 turns the limit off.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Arc::default(),
        }
    }

    /// Takes a token for `key`; the wait in seconds when there is none.
    fn take(&self, key: [u8; 32]) -> Result<(), u64> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget full buckets rather than grow without bound.
            let burst = self.burst;
            let per_sec = self.per_sec;
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// Paths that answer without a key and must keep answering under load:
/// an orchestrator that sees 429 would restart a healthy gateway.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// Applies the limit to requests that present a key; docs, which need
/// none, and probes, whatever they carry, pass.
pub async fn limit_rate<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let presented = match PROBES.contains(&req.uri().path()) {
        true => None,
        false => super::auth::presented_key(req.headers()).map(|k| Sha256::digest(k).into()),
    };
    if let (Some(key), Some(limiter)) = (presented, req.data::<RateLimiter>())
        && let Err(wait) = limiter.take(key)
    {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests with this key; retry in {wait} s"),
        )
        .into_response();
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    next.call(req).await.map(IntoResponse::into_response)
}
