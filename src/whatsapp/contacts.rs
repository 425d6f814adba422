//! Both halves of a person's address: the client's LID↔number store first
//! (what WhatsApp told this device), WhatsApp's directory (a usync query,
//! whose answer the client stores) when the store does not know.

use whatsapp_rust::Jid;
use whatsapp_rust::client::Client;

use super::translate::bare;
use crate::engine::{ContactKey, EngineError, Party};

pub async fn lookup(client: &Client, key: &ContactKey) -> Result<Option<Party>, EngineError> {
    let jid = match key {
        ContactKey::Phone(number) => Jid::pn(number.as_str()),
        ContactKey::Lid(lid) => Jid::lid(lid.as_str()),
    };
    let stored = client
        .get_lid_pn_entry(&jid)
        .await
        .map_err(|e| EngineError::Store(e.to_string()))?;
    if let Some(entry) = stored {
        return Ok(Some(person(key, &entry.phone_number, &entry.lid)));
    }
    let answers = client
        .contacts()
        .is_on_whatsapp(std::slice::from_ref(&jid))
        .await
        .map_err(|e| EngineError::Refused(e.to_string()))?;
    let Some(answer) = answers.into_iter().find(|a| a.is_registered) else {
        return Ok(None);
    };
    let number = [Some(&answer.jid), answer.pn_jid.as_ref()]
        .into_iter()
        .flatten()
        .find(|j| j.is_pn())
        .map(|j| j.user.to_string());
    let lid = [Some(&answer.jid), answer.lid.as_ref()]
        .into_iter()
        .flatten()
        .find(|j| j.is_lid())
        .map(bare);
    Ok(Some(match key {
        ContactKey::Phone(asked) => Party {
            jid: format!("{}@s.whatsapp.net", number.as_deref().unwrap_or(asked)),
            phone_number: number.or_else(|| Some(asked.clone())),
            lid,
        },
        ContactKey::Lid(asked) => Party {
            jid: format!("{asked}@lid"),
            phone_number: number,
            lid: lid.or_else(|| Some(format!("{asked}@lid"))),
        },
    }))
}

/// The person from a stored mapping, addressed as they were asked about.
fn person(key: &ContactKey, number: &str, lid: &str) -> Party {
    let jid = match key {
        ContactKey::Phone(_) => format!("{number}@s.whatsapp.net"),
        ContactKey::Lid(_) => format!("{lid}@lid"),
    };
    Party {
        jid,
        phone_number: Some(number.to_owned()),
        lid: Some(format!("{lid}@lid")),
    }
}
