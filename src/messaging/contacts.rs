//! A person's other address: a phone number's LID, or a LID's number, from
//! the live session (its store first, then WhatsApp's directory).

use uuid::Uuid;

use super::send::Messenger;
use crate::engine::{ContactKey, EngineError, Party};

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("neither the session's store nor WhatsApp's directory knows this contact")]
    Unknown,
    #[error("the instance is not connected to WhatsApp")]
    NotConnected,
    #[error("WhatsApp engine: {0}")]
    Engine(#[from] EngineError),
}

impl Messenger {
    /// The person `key` names, with both halves of their address.
    pub async fn lookup_contact(
        &self,
        instance_id: Uuid,
        key: &ContactKey,
    ) -> Result<Party, LookupError> {
        let session = self
            .sessions()
            .session(instance_id)
            .ok_or(LookupError::NotConnected)?;
        session
            .lookup_contact(key)
            .await?
            .ok_or(LookupError::Unknown)
    }
}
