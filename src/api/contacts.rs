//! Contacts: the other half of a person's address, a phone number's LID
//! or a LID's phone number.

use poem::http::StatusCode;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::messages::view::PartyView;
use crate::access::Scope;
use crate::engine::{ContactKey, EngineError};
use crate::messaging::contacts::LookupError;
use crate::state::AppState;

impl From<LookupError> for ApiError {
    fn from(err: LookupError) -> Self {
        let detail = err.to_string();
        match err {
            LookupError::Unknown => Self::new(StatusCode::NOT_FOUND, "contact_unknown", detail),
            LookupError::NotConnected | LookupError::Engine(EngineError::NotConnected) => {
                Self::new(StatusCode::CONFLICT, "instance_not_connected", detail)
            }
            LookupError::Engine(EngineError::Timeout(_)) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "whatsapp_timeout", detail)
            }
            LookupError::Engine(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", detail)
            }
        }
    }
}

pub struct ContactsApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::Messages")]
impl ContactsApi {
    /// Look a contact up
    ///
    /// Give exactly one of `phone` and `lid` (422 `invalid_lookup`
    /// otherwise); the answer names both. Known mappings come from the
    /// session's store, unknown ones from WhatsApp's directory; 404
    /// `contact_unknown` when neither knows. Needs the instance connected.
    #[oai(
        path = "/v1/instances/:id/contacts/lookup",
        method = "get",
        operation_id = "lookup_contact"
    )]
    async fn lookup(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        /// A phone number, E.164 digits with an optional `+`.
        #[oai(validator(pattern = r"^\+?[1-9][0-9]{6,19}$"))]
        phone: Query<Option<String>>,
        /// A LID, `digits@lid` or the digits alone.
        #[oai(validator(pattern = r"^[0-9]{1,24}(@lid)?$"))]
        lid: Query<Option<String>>,
    ) -> Result<Json<PartyView>, ApiError> {
        auth.instance(id.0, Scope::Read)?;
        crate::instances::store::get(&self.state.db, id.0).await?;
        let key = match (phone.0, lid.0) {
            (Some(phone), None) => ContactKey::Phone(phone.trim_start_matches('+').to_owned()),
            (None, Some(lid)) => ContactKey::Lid(lid.trim_end_matches("@lid").to_owned()),
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_lookup",
                    "give exactly one of `phone` and `lid`",
                ));
            }
        };
        let party = self.state.messenger.lookup_contact(id.0, &key).await?;
        Ok(Json(party.into()))
    }
}
