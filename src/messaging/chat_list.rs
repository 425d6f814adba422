//! An instance's chats, newest activity first: each with its last message
//! and how many received messages are not read yet. A person's chat is one
//! chat whether WhatsApp addressed it by number or by LID.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::{inbound_messages, messages};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::history::{CHANGES, Stored};
use crate::engine::Body;
use crate::sealing::Keyring;

/// One chat of the list.
#[derive(Debug, Clone)]
pub struct ChatSummary {
    /// The chat's JID (a person's number JID when WhatsApp named it).
    pub chat: String,
    pub last: Stored,
    pub unread: u64,
}

/// Where a page ends: the last chat's activity time and JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCursor {
    pub at_micros: i64,
    pub chat: String,
}

#[derive(Default)]
struct Entry {
    /// The JIDs this chat was addressed by.
    members: Vec<String>,
    at_micros: i64,
    unread: u64,
}

/// One page, and the cursor of the next when there is one.
pub async fn list(
    db: &DatabaseConnection,
    keyring: &Keyring,
    instance_id: Uuid,
    after: Option<&ChatCursor>,
    limit: u64,
) -> Result<(Vec<ChatSummary>, Option<ChatCursor>), DbErr> {
    let mut chats: BTreeMap<String, Entry> = BTreeMap::new();
    let mut join = |key: String, jid: String, at: Option<DateTime<Utc>>, unread: u64| {
        let entry = chats.entry(key).or_default();
        if !entry.members.contains(&jid) {
            entry.members.push(jid);
        }
        entry.at_micros = entry
            .at_micros
            .max(at.map(|a| a.timestamp_micros()).unwrap_or(0));
        entry.unread += unread;
    };
    use inbound_messages::Column as In;
    let received: Vec<(String, Option<String>, Option<DateTime<Utc>>)> =
        inbound_messages::Entity::find()
            .select_only()
            .column(In::ChatJid)
            .column_as(In::SenderPhoneNumber.max(), "number")
            .column_as(In::CreatedAt.max(), "last_at")
            .filter(In::InstanceId.eq(instance_id))
            .filter(In::Kind.is_not_in(CHANGES))
            .group_by(In::ChatJid)
            .into_tuple()
            .all(db)
            .await?;
    let unread: BTreeMap<String, i64> = inbound_messages::Entity::find()
        .select_only()
        .column(In::ChatJid)
        .column_as(In::Id.count(), "unread")
        .filter(In::InstanceId.eq(instance_id))
        .filter(In::Kind.is_not_in(CHANGES))
        .filter(In::ReadAt.is_null())
        .filter(In::DeletedAt.is_null())
        .group_by(In::ChatJid)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    for (jid, number, at) in received {
        let key = match number {
            Some(n) if jid.ends_with("@lid") => format!("{n}@s.whatsapp.net"),
            _ => jid.clone(),
        };
        let count = unread.get(&jid).copied().unwrap_or(0).max(0) as u64;
        join(key, jid, at, count);
    }
    use messages::Column as Out;
    let sent: Vec<(String, Option<DateTime<Utc>>)> = messages::Entity::find()
        .select_only()
        .column(Out::ToJid)
        .column_as(Out::CreatedAt.max(), "last_at")
        .filter(Out::InstanceId.eq(instance_id))
        .group_by(Out::ToJid)
        .into_tuple()
        .all(db)
        .await?;
    for (jid, at) in sent {
        join(jid.clone(), jid, at, 0);
    }

    let mut ordered: Vec<(String, Entry)> = chats.into_iter().collect();
    ordered.sort_by(|(a, x), (b, y)| y.at_micros.cmp(&x.at_micros).then_with(|| a.cmp(b)));
    let start = match after {
        Some(c) => ordered
            .iter()
            .position(|(key, e)| {
                e.at_micros < c.at_micros || (e.at_micros == c.at_micros && *key > c.chat)
            })
            .unwrap_or(ordered.len()),
        None => 0,
    };
    let rest = ordered.len() - start;
    let mut page = Vec::new();
    for (chat, entry) in ordered.into_iter().skip(start).take(limit as usize) {
        let Some(last) = last_message(db, keyring, instance_id, &entry.members).await? else {
            continue;
        };
        page.push((
            ChatSummary {
                chat,
                last,
                unread: entry.unread,
            },
            entry.at_micros,
        ));
    }
    let next = (rest as u64 > limit)
        .then(|| page.last())
        .flatten()
        .map(|(s, at)| ChatCursor {
            at_micros: *at,
            chat: s.chat.clone(),
        });
    Ok((page.into_iter().map(|(s, _)| s).collect(), next))
}

/// The newest message of a chat addressed by any of `jids`.
async fn last_message(
    db: &DatabaseConnection,
    keyring: &Keyring,
    instance_id: Uuid,
    jids: &[String],
) -> Result<Option<Stored>, DbErr> {
    use inbound_messages::Column as In;
    use messages::Column as Out;
    let sent = messages::Entity::find()
        .filter(Out::InstanceId.eq(instance_id))
        .filter(Out::ToJid.is_in(jids.iter().cloned()))
        .order_by_desc(Out::Id)
        .one(db)
        .await?
        .map(|m| Stored::of_sent(keyring, m));
    let received = inbound_messages::Entity::find()
        .filter(In::InstanceId.eq(instance_id))
        .filter(In::ChatJid.is_in(jids.iter().cloned()))
        .filter(In::Kind.is_not_in(CHANGES))
        .order_by_desc(In::Id)
        .one(db)
        .await?
        .map(|m| Stored::of_received(keyring, m));
    Ok(match (sent, received) {
        (Some(s), Some(r)) => Some(if s.row_id > r.row_id { s } else { r }),
        (s, r) => s.or(r),
    })
}

/// What a chat list shows of a message: its text or caption, a place's
/// name, a poll's question or a card's name, cut to 100 characters.
pub fn preview(m: &Stored) -> Option<String> {
    let whole = match m.body.as_ref()? {
        Body::Text { text } => text.clone(),
        Body::Media { caption, .. } => caption.clone()?,
        Body::Location { name, address, .. } => name.clone().or_else(|| address.clone())?,
        Body::Poll { question, .. } => question.clone(),
        Body::Contacts { contacts } => contacts.first()?.display_name.clone(),
    };
    Some(whole.chars().take(100).collect())
}
