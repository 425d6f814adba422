//! API keys at the edge: the admin key from the configuration (compared as a
//! SHA-256 digest in constant time, so neither its length nor its content
//! leaks through timing) and scoped keys from the database.

use poem::Request;
use poem::http::{HeaderMap, StatusCode, header};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::ApiError;
use crate::access::{Denied, Principal, Scope, keys};
use crate::instances::InstanceError;

/// The keys the server accepts; installed as request data.
#[derive(Clone)]
pub struct Keys {
    admin_digest: [u8; 32],
    db: DatabaseConnection,
}

impl Keys {
    pub fn new(admin_key: &str, db: DatabaseConnection) -> Self {
        Self {
            admin_digest: Sha256::digest(admin_key.as_bytes()).into(),
            db,
        }
    }

    pub(crate) async fn check(&self, presented: &str) -> Result<Option<Principal>, ApiError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.admin_digest)) {
            return Ok(Some(Principal::Admin));
        }
        Ok(keys::find(&self.db, presented)
            .await?
            .map(Principal::Scoped))
    }
}

/// The key a request presents, as `Authorization: Bearer` (which wins, as
/// in [`Auth`]) or `X-Api-Key`: one key is one identity however it is sent.
pub fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    let bearer = headers.get(header::AUTHORIZATION).map(|v| {
        let v = v.as_bytes();
        match v.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii_start(),
            _ => v,
        }
    });
    bearer.or_else(|| headers.get("x-api-key").map(|v| v.as_bytes()))
}

async fn authenticate(req: &Request, presented: &str) -> poem::Result<Principal> {
    let principal = match req.data::<Keys>() {
        Some(keys) => keys.check(presented).await?,
        None => None,
    };
    principal.ok_or_else(|| {
        // The presented key is never logged.
        tracing::warn!(path = %req.uri().path(), "rejected API key");
        ApiError::unauthorized().into()
    })
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    authenticate(req, &bearer.token).await
}

async fn check_header(req: &Request, key: ApiKey) -> poem::Result<Principal> {
    authenticate(req, &key.key).await
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
    pub fn principal(&self) -> &Principal {
        match self {
            Auth::Bearer(BearerKey(p)) | Auth::Header(HeaderKey(p)) => p,
        }
    }

    /// Admin-only routes.
    pub fn admin(&self) -> Result<(), ApiError> {
        Ok(self.principal().require_admin()?)
    }

    /// Routes on one instance.
    pub fn instance(&self, id: Uuid, scope: Scope) -> Result<(), ApiError> {
        Ok(self.principal().require(id, scope)?)
    }

    /// The instances a listing may show; `None` means all.
    pub fn visible(&self, scope: Scope) -> Option<Vec<Uuid>> {
        self.principal().visible(scope)
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            // Exactly what a missing instance answers.
            Denied::Hidden(id) => InstanceError::NotFound(id).into(),
            Denied::MissingScope(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                denied.to_string(),
            ),
            Denied::AdminOnly => ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_key_required",
                denied.to_string(),
            ),
        }
    }
}
