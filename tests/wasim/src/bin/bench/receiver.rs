//! The bench's webhook receiver on 127.0.0.1: counts deliveries by event
//! type and answers 204 at once, so the gateway's side is what is measured.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

/// Per event type: the message ids seen, each with when it first arrived
/// (events without one all count as one, under "").
type Counts = Arc<Mutex<HashMap<String, HashMap<String, Instant>>>>;

pub struct Receiver {
    addr: SocketAddr,
    counts: Counts,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Receiver {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Counts::default();
        let kept = counts.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let counts = kept.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let service =
                        hyper::service::service_fn(move |req| record(counts.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            counts,
            accept,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Messages an event of type `kind` arrived for so far (a retried
    /// delivery counts once).
    pub fn count(&self, kind: &str) -> usize {
        self.counts
            .lock()
            .map(|c| c.get(kind).map_or(0, HashMap::len))
            .unwrap_or(0)
    }

    /// Whether an event of type `kind` arrived for message `id`.
    pub fn has(&self, kind: &str, id: &str) -> bool {
        self.counts
            .lock()
            .is_ok_and(|c| c.get(kind).is_some_and(|ids| ids.contains_key(id)))
    }

    /// When the first event of type `kind` for message `id` arrived.
    pub fn arrived(&self, kind: &str, id: &str) -> Option<Instant> {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.get(kind).and_then(|ids| ids.get(id).copied()))
    }
}

async fn record(
    counts: Counts,
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let event = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let kind = event["type"].as_str().unwrap_or_default().to_owned();
    let id = event["data"]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut counts) = counts.lock() {
        counts
            .entry(kind)
            .or_default()
            .entry(id)
            .or_insert_with(Instant::now);
    }
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
