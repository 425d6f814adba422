//! `/v1/keys`: API keys scoped to instances. Admin only.

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::text::{self, Text};
use crate::access::Scope;
use crate::access::keys::{self, KeyError, KeyInfo};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "KeyScope")]
pub enum ScopeName {
    /// Send messages and check numbers.
    Send,
    /// Read instances, messages and events.
    Read,
    /// Manage webhooks: registrations, secrets, deliveries, replays.
    Webhooks,
    /// Pair (QR and linking codes), log out, rename and delete instances.
    Manage,
}

impl From<ScopeName> for Scope {
    fn from(s: ScopeName) -> Self {
        match s {
            ScopeName::Send => Scope::Send,
            ScopeName::Read => Scope::Read,
            ScopeName::Webhooks => Scope::Webhooks,
            ScopeName::Manage => Scope::Manage,
        }
    }
}

impl From<Scope> for ScopeName {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Send => ScopeName::Send,
            Scope::Read => ScopeName::Read,
            Scope::Webhooks => ScopeName::Webhooks,
            Scope::Manage => ScopeName::Manage,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CreateKey {
    /// A label for people.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<Text>,
    /// The instances the key may see; every other instance is 404 to it.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub instances: Vec<Uuid>,
    /// What the key may do with them.
    #[oai(validator(min_items = 1, max_items = 4))]
    pub scopes: Vec<ScopeName>,
}

/// An API key as listed: its prefix, never the key.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "ApiKey")]
pub struct KeyView {
    pub id: Uuid,
    pub name: Option<String>,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<ScopeName>,
    pub instances: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes.into_iter().map(Into::into).collect(),
            instances: k.instances,
            created_at: k.created_at,
        }
    }
}

/// A key just made. `key` is shown this once; only its hash is kept.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedKey {
    pub id: Uuid,
    pub key: String,
    pub prefix: String,
    pub name: Option<String>,
    pub scopes: Vec<ScopeName>,
    pub instances: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

#[derive(ApiResponse)]
pub enum Created {
    #[oai(status = 201)]
    Created(Json<CreatedKey>),
}

#[derive(ApiResponse)]
pub enum Revoked {
    /// The key no longer works.
    #[oai(status = 204)]
    Revoked,
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        let detail = err.to_string();
        match err {
            KeyError::UnknownInstance(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "instance_not_found",
                detail,
            ),
            KeyError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "key_not_found", detail),
            KeyError::Random => ApiError::internal(&err),
            KeyError::Db(e) => e.into(),
        }
    }
}

pub struct KeysApi {
    pub state: AppState,
}

#[OpenApi(prefix_path = "/v1/keys", tag = "ApiTags::Keys")]
impl KeysApi {
    /// Create an API key
    ///
    /// A key for some instances with some scopes. The key is in this
    /// response only; store it now.
    #[oai(path = "/", method = "post", operation_id = "create_key")]
    async fn create(&self, auth: Auth, body: Json<CreateKey>) -> Result<Created, ApiError> {
        auth.admin()?;
        let scopes: Vec<Scope> = body.0.scopes.into_iter().map(Into::into).collect();
        let made = keys::create(
            &self.state.db,
            text::opt(body.0.name),
            &body.0.instances,
            &scopes,
        )
        .await?;
        tracing::info!(key_id = %made.info.id, prefix = %made.info.prefix, "API key created");
        let info = made.info;
        Ok(Created::Created(Json(CreatedKey {
            id: info.id,
            key: made.key,
            prefix: info.prefix,
            name: info.name,
            scopes: info.scopes.into_iter().map(Into::into).collect(),
            instances: info.instances,
            created_at: info.created_at,
        })))
    }

    /// List API keys
    #[oai(path = "/", method = "get", operation_id = "list_keys")]
    async fn list(&self, auth: Auth) -> Result<Json<KeyList>, ApiError> {
        auth.admin()?;
        let items = keys::list(&self.state.db).await?;
        Ok(Json(KeyList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// Revoke an API key
    #[oai(path = "/:key_id", method = "delete", operation_id = "revoke_key")]
    async fn revoke(&self, auth: Auth, key_id: Path<Uuid>) -> Result<Revoked, ApiError> {
        auth.admin()?;
        keys::revoke(&self.state.db, key_id.0).await?;
        tracing::info!(key_id = %key_id.0, "API key revoked");
        Ok(Revoked::Revoked)
    }
}
