//! whatsapp-rust's `HttpClient` over reqwest (media upload and download,
//! version lookup). Non-2xx answers are returned, not raised: the crate
//! inspects the status itself. Downloads stream: the crate reads the body
//! on a blocking thread, which pulls it chunk by chunk from the runtime.

use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::wacore::net::StreamingHttpResponse;

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
}

#[async_trait::async_trait]
impl HttpClient for ReqwestHttp {
    async fn execute(&self, request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let mut builder = self.client.request(method, self.target(&request.url));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder.send().await?;
        let status_code = response.status().as_u16();
        let body = response.bytes().await?.to_vec();
        Ok(HttpResponse { status_code, body })
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
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let mut builder = self.client.request(method, self.target(&request.url));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = runtime.block_on(builder.send())?;
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
