//! API keys. Today one admin key from the configuration; the key is compared
//! as a SHA-256 digest in constant time, so neither its length nor its
//! content leaks through timing.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Who a request acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Admin,
}

/// The keys the server accepts; installed as request data.
#[derive(Clone)]
pub struct Keys {
    admin_digest: [u8; 32],
}

impl Keys {
    pub fn new(admin_key: &str) -> Self {
        Self {
            admin_digest: Sha256::digest(admin_key.as_bytes()).into(),
        }
    }

    fn check(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.admin_digest)).then_some(Principal::Admin)
    }
}

fn authenticate(req: &Request, presented: &str) -> poem::Result<Principal> {
    let principal = req.data::<Keys>().and_then(|keys| keys.check(presented));
    principal.ok_or_else(|| {
        // The presented key is never logged.
        tracing::warn!(path = %req.uri().path(), "rejected API key");
        ApiError::unauthorized().into()
    })
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    authenticate(req, &bearer.token)
}

async fn check_header(req: &Request, key: ApiKey) -> poem::Result<Principal> {
    authenticate(req, &key.key)
}

/// `Authorization: Bearer <key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct BearerKey(Principal);

/// `X-Api-Key: <key>`, for tools that cannot set `Authorization`.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-Api-Key",
    key_in = "header",
    checker = "check_header"
)]
pub struct HeaderKey(Principal);

/// Either way of presenting an API key.
#[derive(SecurityScheme)]
pub enum Auth {
    Bearer(BearerKey),
    Header(HeaderKey),
}

impl Auth {
    pub fn principal(&self) -> Principal {
        match self {
            Auth::Bearer(BearerKey(p)) | Auth::Header(HeaderKey(p)) => *p,
        }
    }
}
