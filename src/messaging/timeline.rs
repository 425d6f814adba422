//! An instance's messages of both directions, newest first, filtered by
//! chat, direction, kind and time, paged by the row id (time-ordered across
//! both tables).

use chrono::{DateTime, Utc};
use entity::{inbound_messages, messages};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::history::{CHANGES, Direction, Stored};
use crate::sealing::Keyring;

/// A chat as a filter names it: its JID, a phone number or a LID. One
/// person's chat matches whether WhatsApp addressed it by number or LID.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    pub jid: String,
    /// E.164 digits, when the chat is a person's number.
    pub number: Option<String>,
    /// `…@lid`, when the chat is a person's LID.
    pub lid: Option<String>,
}

impl ChatFilter {
    /// The chat `given` names: digits (with an optional `+`), or a
    /// `…@s.whatsapp.net`, `…@lid` or `…@g.us` JID.
    pub fn parse(given: &str) -> Self {
        let given = given.trim_start_matches('+');
        match given.split_once('@') {
            None => Self {
                jid: format!("{given}@s.whatsapp.net"),
                number: Some(given.to_owned()),
                lid: None,
            },
            Some((user, "s.whatsapp.net")) => Self {
                jid: given.to_owned(),
                number: Some(user.to_owned()),
                lid: None,
            },
            Some((_, "lid")) => Self {
                jid: given.to_owned(),
                number: None,
                lid: Some(given.to_owned()),
            },
            Some(_) => Self {
                jid: given.to_owned(),
                number: None,
                lid: None,
            },
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub chat: Option<ChatFilter>,
    pub direction: Option<Direction>,
    /// A sent message's status; received messages have none.
    pub status: Option<&'static str>,
    /// Stored kinds to keep; all when `None`.
    pub kinds: Option<Vec<&'static str>>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only rows older than this one (a previous page's cursor).
    pub before: Option<Uuid>,
}

/// One page newest first, and the cursor of the next when there is one.
pub async fn list(
    db: &DatabaseConnection,
    keyring: &Keyring,
    instance_id: Uuid,
    filter: &Filter,
    limit: u64,
) -> Result<(Vec<Stored>, Option<Uuid>), DbErr> {
    let mut page = Vec::new();
    if filter.direction != Some(Direction::In) {
        page.extend(
            sent(db, instance_id, filter, limit + 1)
                .await?
                .into_iter()
                .map(|m| Stored::of_sent(keyring, m)),
        );
    }
    if filter.direction != Some(Direction::Out) && filter.status.is_none() {
        page.extend(
            received(db, instance_id, filter, limit + 1)
                .await?
                .into_iter()
                .map(|m| Stored::of_received(keyring, m)),
        );
    }
    page.sort_by_key(|m| std::cmp::Reverse(m.row_id));
    let next = if page.len() as u64 > limit {
        page.truncate(limit as usize);
        page.last().map(|m| m.row_id)
    } else {
        None
    };
    Ok((page, next))
}

async fn sent(
    db: &DatabaseConnection,
    instance_id: Uuid,
    filter: &Filter,
    rows: u64,
) -> Result<Vec<messages::Model>, DbErr> {
    use messages::{Column as C, Entity};
    let mut query = Entity::find().filter(C::InstanceId.eq(instance_id));
    if let Some(chat) = &filter.chat {
        let mut any = Condition::any().add(C::ToJid.eq(chat.jid.as_str()));
        if let Some(number) = &chat.number {
            any = any.add(C::ToNumber.eq(number.as_str()));
        }
        if let Some(lid) = &chat.lid {
            any = any.add(C::ToLid.eq(lid.as_str()));
        }
        query = query.filter(any);
    }
    if let Some(status) = filter.status {
        query = query.filter(C::Status.eq(status));
    }
    if let Some(kinds) = &filter.kinds {
        query = query.filter(C::Kind.is_in(kinds.iter().copied()));
    }
    if let Some(since) = filter.since {
        query = query.filter(C::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(C::CreatedAt.lt(until));
    }
    if let Some(before) = filter.before {
        query = query.filter(C::Id.lt(before));
    }
    query.order_by_desc(C::Id).limit(rows).all(db).await
}

async fn received(
    db: &DatabaseConnection,
    instance_id: Uuid,
    filter: &Filter,
    rows: u64,
) -> Result<Vec<inbound_messages::Model>, DbErr> {
    use inbound_messages::{Column as C, Entity};
    let mut query = Entity::find()
        .filter(C::InstanceId.eq(instance_id))
        .filter(C::Kind.is_not_in(CHANGES));
    if let Some(chat) = &filter.chat {
        let mut any = Condition::any().add(C::ChatJid.eq(chat.jid.as_str()));
        // A person's chat, addressed by the other half of their address.
        let one_to_one = C::ChatJid.not_like("%@g.us");
        if let Some(number) = &chat.number {
            any = any.add(
                Condition::all()
                    .add(C::SenderPhoneNumber.eq(number.as_str()))
                    .add(one_to_one.clone()),
            );
        }
        if let Some(lid) = &chat.lid {
            any = any.add(
                Condition::all()
                    .add(C::SenderLid.eq(lid.as_str()))
                    .add(one_to_one),
            );
        }
        query = query.filter(any);
    }
    if let Some(kinds) = &filter.kinds {
        query = query.filter(C::Kind.is_in(kinds.iter().copied()));
    }
    if let Some(since) = filter.since {
        query = query.filter(C::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(C::CreatedAt.lt(until));
    }
    if let Some(before) = filter.before {
        query = query.filter(C::Id.lt(before));
    }
    query.order_by_desc(C::Id).limit(rows).all(db).await
}
