//! The simulator's plain-HTTP side, on the same port as the WebSocket: the
//! web client's version file, the media hosts (upload and download) and
//! the control surface for scripts. The gateway's test build sends every
//! WhatsApp HTTPS request here (see `src/whatsapp/http.rs` in wagate).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpStream;

use crate::server::Shared;

/// The `client_revision` the simulated web.whatsapp.com advertises.
const CLIENT_REVISION: u32 = 1_020_000_000;

/// Uploaded media, by path.
#[derive(Default)]
pub struct MediaStore {
    blobs: Mutex<HashMap<String, Bytes>>,
    uploads: Mutex<Vec<Upload>>,
}

/// How one upload arrived at the media host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub direct_path: String,
    /// The request's `Content-Length`, if it had one (not chunked).
    pub content_length: Option<u64>,
    /// The body's bytes as received.
    pub received: u64,
}

impl MediaStore {
    pub fn uploaded(&self, upload: Upload, body: Bytes) {
        let path = upload.direct_path.clone();
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(upload);
        self.put(path, body);
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn put(&self, path: String, body: Bytes) {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path, body);
    }

    pub fn get(&self, path: &str) -> Option<Bytes> {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
    }

    /// How many stored blobs have a path starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    }
}

pub async fn serve(shared: Arc<Shared>, tcp: TcpStream) -> Result<(), hyper::Error> {
    let io = hyper_util::rt::TokioIo::new(tcp);
    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
    hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

pub fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let content_length = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": e.to_string() }),
            ));
        }
    };
    tracing::debug!(%method, %path, len = body.len(), "http");
    let response = match (&method, path.as_str()) {
        (&Method::GET, "/sw.js") => respond(
            StatusCode::OK,
            "application/javascript",
            format!("self.__swData={{\"client_revision\":{CLIENT_REVISION}}};"),
        ),
        // A large upload first asks whether an earlier attempt left part of
        // it here: never, in the simulator.
        (&Method::POST, p) if p.starts_with("/mms/") && query.contains("resume=1") => {
            json(StatusCode::OK, serde_json::json!({}))
        }
        (&Method::POST, p) if p.starts_with("/mms/") => {
            // `/mms/<type>/<token>`: the token is the file's encrypted hash.
            let direct_path = format!("/v/t62.sim-24/{}", p.rsplit('/').next().unwrap_or("blob"));
            let upload = Upload {
                direct_path: direct_path.clone(),
                content_length,
                received: body.len() as u64,
            };
            shared.media.uploaded(upload, body);
            let host = shared.http_authority();
            json(
                StatusCode::OK,
                serde_json::json!({
                    "url": format!("https://{host}{direct_path}"),
                    "direct_path": direct_path,
                }),
            )
        }
        (&Method::GET, p) if p.starts_with("/v/") || p.starts_with("/files/") => {
            match shared.media.get(p) {
                Some(bytes) => respond(StatusCode::OK, "application/octet-stream", bytes),
                None => respond(StatusCode::NOT_FOUND, "text/plain", "no such media"),
            }
        }
        (_, p) if p.starts_with("/control/") => {
            crate::control::http(&shared, &method, p, &query, &body).await
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not simulated"),
    };
    Ok(response)
}
