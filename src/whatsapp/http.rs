//! whatsapp-rust's `HttpClient` over reqwest (media upload and download,
//! version lookup). Non-2xx answers are returned, not raised: the crate
//! inspects the status itself. Uploads and downloads stream: the crate reads the body
//! on a blocking thread, which pulls it chunk by chunk from the runtime.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::wacore::net::{StreamingHttpResponse, UploadBody};

/// How much of a streamed upload is read ahead of the socket.
const UPLOAD_CHUNK: usize = 64 * 1024;
const UPLOAD_CHUNKS_AHEAD: usize = 4;

/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
    /// `http://host:port` of the simulator every request goes to instead.
    #[cfg(feature = "sim")]
    redirect: Option<String>,
}

impl ReqwestHttp {
    pub fn new() -> Result<Self, reqwest::Error> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            .build()?;
        Ok(Self {
            client,
            #[cfg(feature = "sim")]
            redirect: None,
        })
    }

    /// Test builds: sends every request to the simulator serving `ws_url`
    /// (same host and port, plain HTTP), keeping path and query.
    #[cfg(feature = "sim")]
    pub fn redirected_to(mut self, ws_url: Option<&str>) -> Self {
        self.redirect = ws_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| Some(format!("http://{}:{}", u.host_str()?, u.port()?)));
        self
    }

    fn target(&self, url: &str) -> String {
        #[cfg(feature = "sim")]
        if let (Some(base), Ok(parsed)) = (&self.redirect, url::Url::parse(url)) {
            let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
            return format!("{base}{}{query}", parsed.path());
        }
        url.to_owned()
    }

    fn builder(
        &self,
        request: &HttpRequest,
    ) -> whatsapp_rust::anyhow::Result<reqwest::RequestBuilder> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let mut builder = self.client.request(method, self.target(&request.url));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        Ok(builder)
    }
}

async fn answer(builder: reqwest::RequestBuilder) -> Result<HttpResponse, reqwest::Error> {
    let response = builder.send().await?;
    let status_code = response.status().as_u16();
    let body = response.bytes().await?.to_vec();
    Ok(HttpResponse { status_code, body })
}

#[async_trait::async_trait]
impl HttpClient for ReqwestHttp {
    async fn execute(&self, request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        let mut builder = self.builder(&request)?;
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        Ok(answer(builder).await?)
    }

    fn supports_upload_streaming(&self) -> bool {
        true
    }

    /// Called on a blocking thread: reads `body` there and feeds the request,
    /// which runs on the runtime, a few chunks ahead of the socket.
    fn execute_upload(
        &self,
        request: HttpRequest,
        mut body: UploadBody,
        content_length: u64,
    ) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let (chunks, receiver) = tokio::sync::mpsc::channel(UPLOAD_CHUNKS_AHEAD);
        let builder = self
            .builder(&request)?
            .header(reqwest::header::CONTENT_LENGTH, content_length)
            .body(reqwest::Body::wrap(ChunkBody {
                receiver,
                remaining: content_length,
            }));
        let exchange = runtime.spawn(answer(builder));
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    // The request ends short of its length and fails.
                    let _ = chunks.blocking_send(Err(e));
                    break;
                }
            };
            // A closed channel means the request already ended; its
            // outcome says why.
            if chunks
                .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                .is_err()
            {
                break;
            }
        }
        drop(chunks);
        Ok(runtime.block_on(exchange)??)
    }

    fn supports_streaming(&self) -> bool {
        true
    }

    /// Called on a blocking thread of the tokio runtime, so it may block on
    /// the runtime's futures.
    fn execute_streaming(
        &self,
        request: HttpRequest,
    ) -> whatsapp_rust::anyhow::Result<StreamingHttpResponse> {
        let runtime = tokio::runtime::Handle::try_current()?;
        let response = runtime.block_on(self.builder(&request)?.send())?;
        Ok(StreamingHttpResponse {
            status_code: response.status().as_u16(),
            body: Box::new(BlockingBody {
                runtime,
                response,
                chunk: bytes::Bytes::new(),
            }),
        })
    }
}

/// A request body of known length fed from a channel.
struct ChunkBody {
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.receiver.poll_recv(cx).map(|chunk| {
            chunk.map(|chunk| {
                chunk.map(|data| {
                    self.remaining = self.remaining.saturating_sub(data.len() as u64);
                    http_body::Frame::data(data)
                })
            })
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// A response body read synchronously, one network chunk at a time.
struct BlockingBody {
    runtime: tokio::runtime::Handle,
    response: reqwest::Response,
    chunk: bytes::Bytes,
}

impl std::io::Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.response.chunk()) {
                Ok(Some(chunk)) => self.chunk = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
