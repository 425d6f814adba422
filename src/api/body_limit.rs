//! Request body limits per route: small for JSON, the media limit for
//! uploads. A declared length over the limit is refused before reading; a
//! chunked body is cut off where it passes the limit.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use poem::http::{StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, ReadBuf};

use super::error::ApiError;

/// Largest JSON body any route accepts.
pub const JSON_LIMIT: u64 = 1024 * 1024;
/// Room for multipart boundaries and the other form fields.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The limit for media uploads, as request data.
#[derive(Clone, Copy)]
pub struct MediaLimit(pub u64);

fn too_large(limit: u64) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body may be at most {limit} bytes"),
    )
    .into_response()
}

pub async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let media = req.data::<MediaLimit>().map(|m| m.0).unwrap_or(JSON_LIMIT);
    let limit = if req.uri().path().ends_with("/media-file") {
        media + MULTIPART_OVERHEAD
    } else {
        JSON_LIMIT
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Ok(too_large(limit));
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    if declared.is_none() {
        let body = req.take_body().into_async_read();
        req.set_body(Body::from_async_read(Limited {
            inner: Box::pin(body),
            left: limit,
            exceeded: exceeded.clone(),
        }));
    }
    let result = next.call(req).await.map(IntoResponse::into_response);
    if exceeded.load(Ordering::Relaxed) {
        return Ok(too_large(limit));
    }
    result
}

struct Limited {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    left: u64,
    exceeded: Arc<AtomicBool>,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > self.left {
            self.exceeded.store(true, Ordering::Relaxed);
            return Poll::Ready(Err(std::io::Error::other("request body too large")));
        }
        self.left -= read;
        polled
    }
}
