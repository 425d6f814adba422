//! What a reaction, an edit or a deletion does to the stored message it
//! targets: reactions are kept one per reactor on the target (sent or
//! received), edits replace the message's text (re-sealed) and deletions
//! mark it deleted. Only the sender's own edits and deletions count: a
//! contact's change their received message, the owner's (made on the
//! phone) a sent one. A change whose target was never stored changes
//! nothing.

use chrono::{DateTime, Utc};
use entity::{inbound_messages, messages};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bodies;
use crate::engine::{Body, Content, Inbound, Party};
use crate::sealing::Keyring;

/// One person's reaction on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub jid: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub lid: Option<String>,
    pub emoji: String,
    pub at: DateTime<Utc>,
}

impl Reaction {
    fn by(&self, p: &Party) -> bool {
        same_person(
            (&self.jid, self.phone_number.as_deref(), self.lid.as_deref()),
            p,
        )
    }
}

/// Whether `(jid, number, lid)` and `p` name the same person: WhatsApp
/// addresses one person by number at one time and by LID at another.
fn same_person(stored: (&str, Option<&str>, Option<&str>), p: &Party) -> bool {
    let (jid, number, lid) = stored;
    jid == p.jid
        || number.is_some_and(|n| p.phone_number.as_deref() == Some(n))
        || lid.is_some_and(|l| p.lid.as_deref() == Some(l) || p.jid == l)
}

/// The reactions a row stores; an unreadable list reads as none.
pub fn reactions_of(stored: Option<&str>) -> Vec<Reaction> {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// `reactions` with `from`'s reaction replaced by `emoji` (removed when
/// empty), as stored.
fn react(stored: Option<&str>, from: &Party, emoji: &str, at: DateTime<Utc>) -> Option<String> {
    let mut reactions = reactions_of(stored);
    reactions.retain(|r| !r.by(from));
    if !emoji.is_empty() {
        reactions.push(Reaction {
            jid: from.jid.clone(),
            phone_number: from.phone_number.clone(),
            lid: from.lid.clone(),
            emoji: emoji.to_owned(),
            at,
        });
    }
    (!reactions.is_empty()).then(|| serde_json::to_string(&reactions).unwrap_or_default())
}

/// Applies a reaction, edit or deletion `m` to its target; other contents
/// change nothing.
pub(super) async fn apply<C: ConnectionTrait>(
    conn: &C,
    keyring: &Keyring,
    instance_id: Uuid,
    m: &Inbound,
) -> Result<(), DbErr> {
    match &m.content {
        Content::Reaction { target_id, emoji } => {
            if let Some(sent) = sent_row(conn, instance_id, target_id).await? {
                let reactions = react(sent.reactions.as_deref(), &m.from, emoji, m.timestamp);
                let mut row: messages::ActiveModel = sent.into();
                row.reactions = Set(reactions);
                row.updated_at = Set(Utc::now());
                row.update(conn).await?;
            } else if let Some(received) = received_row(conn, instance_id, target_id).await? {
                let reactions = react(received.reactions.as_deref(), &m.from, emoji, m.timestamp);
                let mut row: inbound_messages::ActiveModel = received.into();
                row.reactions = Set(reactions);
                row.update(conn).await?;
            }
        }
        Content::Edited { target_id, text } if m.from_me => {
            if let Some(sent) = sent_row(conn, instance_id, target_id).await? {
                let stored = bodies::open(keyring, bodies::SENT, sent.id, sent.body.as_deref());
                let sealed = bodies::seal(keyring, bodies::SENT, sent.id, &edited(stored, text))?;
                let mut row: messages::ActiveModel = sent.into();
                row.body = Set(Some(sealed));
                row.edited_at = Set(Some(m.timestamp));
                row.updated_at = Set(Utc::now());
                row.update(conn).await?;
            }
        }
        Content::Edited { target_id, text } => {
            let Some(received) = own_row(conn, instance_id, target_id, &m.from).await? else {
                return Ok(());
            };
            let stored = bodies::open(
                keyring,
                bodies::RECEIVED,
                received.id,
                received.body.as_deref(),
            );
            let sealed = bodies::seal(
                keyring,
                bodies::RECEIVED,
                received.id,
                &edited(stored, text),
            )?;
            let mut row: inbound_messages::ActiveModel = received.into();
            row.body = Set(Some(sealed));
            row.edited_at = Set(Some(m.timestamp));
            row.update(conn).await?;
        }
        Content::Deleted { target_id } if m.from_me => {
            // The owner deletes their own message, or, as a group's admin,
            // someone else's there (WhatsApp relays only what it allowed).
            if let Some(sent) = sent_row(conn, instance_id, target_id).await? {
                let mut row: messages::ActiveModel = sent.into();
                row.deleted_at = Set(Some(m.timestamp));
                row.updated_at = Set(Utc::now());
                row.update(conn).await?;
            } else if let Some(received) = received_row(conn, instance_id, target_id).await? {
                let mut row: inbound_messages::ActiveModel = received.into();
                row.deleted_at = Set(Some(m.timestamp));
                row.update(conn).await?;
            }
        }
        Content::Deleted { target_id } => {
            if let Some(received) = own_row(conn, instance_id, target_id, &m.from).await? {
                let mut row: inbound_messages::ActiveModel = received.into();
                row.deleted_at = Set(Some(m.timestamp));
                row.update(conn).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A stored body with its text replaced by an edit: a media message keeps
/// its media and gets the text as its caption.
fn edited(stored: Option<Body>, text: &str) -> Body {
    match stored {
        Some(Body::Media {
            kind,
            mime_type,
            file_name,
            ..
        }) => Body::Media {
            kind,
            caption: Some(text.to_owned()),
            mime_type,
            file_name,
        },
        _ => Body::Text {
            text: text.to_owned(),
        },
    }
}

async fn sent_row<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    wa_message_id: &str,
) -> Result<Option<messages::Model>, DbErr> {
    messages::Entity::find()
        .filter(messages::Column::InstanceId.eq(instance_id))
        .filter(messages::Column::WaMessageId.eq(wa_message_id))
        .one(conn)
        .await
}

async fn received_row<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    wa_message_id: &str,
) -> Result<Option<inbound_messages::Model>, DbErr> {
    use inbound_messages::Column as C;
    inbound_messages::Entity::find()
        .filter(C::InstanceId.eq(instance_id))
        .filter(C::WaMessageId.eq(wa_message_id))
        .filter(C::Body.is_not_null())
        .one(conn)
        .await
}

/// The received message `wa_message_id` when `from` sent it.
async fn own_row<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    wa_message_id: &str,
    from: &Party,
) -> Result<Option<inbound_messages::Model>, DbErr> {
    Ok(received_row(conn, instance_id, wa_message_id)
        .await?
        .filter(|row| {
            same_person(
                (
                    &row.sender_jid,
                    row.sender_phone_number.as_deref(),
                    row.sender_lid.as_deref(),
                ),
                from,
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(jid: &str, pn: Option<&str>, lid: Option<&str>) -> Party {
        Party {
            jid: jid.into(),
            phone_number: pn.map(Into::into),
            lid: lid.map(Into::into),
        }
    }

    #[test]
    fn one_reaction_per_reactor_and_an_empty_emoji_removes_it() {
        let at = Utc::now();
        let by_number = person("62811@s.whatsapp.net", Some("62811"), Some("99@lid"));
        let by_lid = person("99@lid", None, Some("99@lid"));
        let other = person("62822@s.whatsapp.net", Some("62822"), None);
        let stored = react(None, &by_number, "👍", at);
        let stored = react(stored.as_deref(), &other, "❤️", at);
        // The same person, now addressed by LID, changes their reaction.
        let stored = react(stored.as_deref(), &by_lid, "😂", at);
        let list = reactions_of(stored.as_deref());
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0].emoji, "❤️");
        assert_eq!(list[1].emoji, "😂");
        let stored = react(stored.as_deref(), &other, "", at);
        let stored = react(stored.as_deref(), &by_number, "", at);
        assert_eq!(stored, None);
    }

    #[test]
    fn a_garbled_list_reads_as_none() {
        assert!(reactions_of(Some("not json")).is_empty());
        assert!(reactions_of(None).is_empty());
    }
}
