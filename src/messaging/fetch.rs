//! Media from a URL: fetched through the shared outbound client (SSRF guard,
//! no automatic redirects), following a few redirects by hand so each hop
//! is checked, with a total timeout and a size limit enforced while reading.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, LOCATION};
use url::Url;

use crate::outbound::{self, ClientOptions, OutboundError, Targets};

const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the media URL is not allowed: {0}")]
    Forbidden(String),
    #[error("the media URL answered {0}")]
    Upstream(StatusCode),
    #[error("fetching the media failed: {0}")]
    Failed(String),
    #[error("the media is larger than {0} bytes")]
    TooLarge(u64),
}

/// A fetched file.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The last path segment, when it looks like a file name.
    pub file_name: Option<String>,
}

#[derive(Clone)]
pub struct MediaFetcher {
    client: reqwest::Client,
    targets: Targets,
    max_bytes: u64,
    timeout: Duration,
}

impl MediaFetcher {
    pub fn new(targets: Targets, timeout: Duration, max_bytes: u64) -> Result<Self, OutboundError> {
        let client = outbound::client(&ClientOptions {
            targets: targets.clone(),
            timeout,
            user_agent: concat!("wagate/", env!("CARGO_PKG_VERSION")).to_owned(),
            idle_per_host: 32,
        })?;
        Ok(Self {
            client,
            targets,
            max_bytes,
            timeout,
        })
    }

    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let mut url = Url::parse(url).map_err(|e| FetchError::Forbidden(format!("{url}: {e}")))?;
        let mut hops = 0;
        let mut response = loop {
            outbound::check_url(&url, &self.targets)
                .map_err(|e| FetchError::Forbidden(e.to_string()))?;
            let response = self.client.get(url.clone()).send().await.map_err(|e| {
                if outbound::is_blocked(&e) {
                    FetchError::Forbidden(format!(
                        "{} resolves to a non-public address",
                        host(&url)
                    ))
                } else if e.is_timeout() {
                    FetchError::Failed(format!("timed out after {} s", self.timeout.as_secs()))
                } else {
                    FetchError::Failed(e.to_string())
                }
            })?;
            if !response.status().is_redirection() {
                break response;
            }
            hops += 1;
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            match next {
                Some(next) if hops <= MAX_REDIRECTS => url = next,
                Some(_) => return Err(FetchError::Failed("too many redirects".into())),
                None => return Err(FetchError::Upstream(response.status())),
            }
        };
        if !response.status().is_success() {
            return Err(FetchError::Upstream(response.status()));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_bytes) {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Failed(format!("timed out after {} s", self.timeout.as_secs()))
            } else {
                FetchError::Failed(e.to_string())
            }
        })? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        let file_name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| s.contains('.'))
            .map(str::to_owned);
        Ok(Fetched { bytes, file_name })
    }
}

fn host(url: &Url) -> String {
    url.host_str().unwrap_or("the host").to_owned()
}
