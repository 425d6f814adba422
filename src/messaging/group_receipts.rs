//! Receipts of a message sent to a group, per participant: the stored list
//! (in `messages.receipts`, JSON) starts with every other member at `sent`
//! and each delivery, read or play moves one participant forward; the
//! message's own status is the least advanced participant's.

use chrono::{DateTime, Utc};
use entity::instances;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::Party;
use crate::engine::groups::GroupInfo;

/// One participant's progress with a group message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantReceipt {
    pub jid: String,
    pub phone_number: Option<String>,
    pub lid: Option<String>,
    /// `sent` (nothing reported yet), `delivered`, `read` or `played`.
    pub status: String,
    /// When it last moved; None while `sent`.
    pub at: Option<DateTime<Utc>>,
}

impl ParticipantReceipt {
    pub fn person(&self) -> Party {
        Party {
            jid: self.jid.clone(),
            phone_number: self.phone_number.clone(),
            lid: self.lid.clone(),
        }
    }

    fn is(&self, who: &Party) -> bool {
        self.jid == who.jid
            || (self.phone_number.is_some() && self.phone_number == who.phone_number)
            || (self.lid.is_some() && self.lid == who.lid)
            || who.lid.as_deref() == Some(self.jid.as_str())
    }
}

fn rank(status: &str) -> u8 {
    match status {
        "delivered" => 1,
        "read" => 2,
        "played" => 3,
        _ => 0,
    }
}

/// The stored list: every member of `group` but the instance itself, at
/// `sent`. None when there is no one else.
pub async fn initial(
    db: &DatabaseConnection,
    instance_id: Uuid,
    group: &GroupInfo,
) -> Result<Option<String>, DbErr> {
    let own = instances::Entity::find_by_id(instance_id)
        .one(db)
        .await?
        .and_then(|i| i.phone_number);
    let list: Vec<ParticipantReceipt> = group
        .participants
        .iter()
        .filter(|m| own.is_none() || m.person.phone_number != own)
        .map(|m| ParticipantReceipt {
            jid: m.person.jid.clone(),
            phone_number: m.person.phone_number.clone(),
            lid: m.person.lid.clone(),
            status: "sent".to_owned(),
            at: None,
        })
        .collect();
    Ok((!list.is_empty()).then(|| serde_json::to_string(&list).unwrap_or_default()))
}

/// The stored list, read leniently: a row that does not parse has none.
pub fn list_of(stored: Option<&str>) -> Vec<ParticipantReceipt> {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// What one receipt changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// The list to store.
    pub stored: String,
    /// The participant, completed from the list (their number or LID).
    pub person: Party,
    /// The least advanced participant's status: the message's own, unless
    /// nobody has reported (then None: it keeps the server's).
    pub overall: Option<String>,
}

/// Moves participant `who` to `status` in `stored`; None when that is not
/// forward for them. Someone not on the list (they joined after the send)
/// is added.
pub fn record(stored: &str, who: &Party, status: &str, now: DateTime<Utc>) -> Option<Moved> {
    let mut list = list_of(Some(stored));
    if who.jid.ends_with("@g.us") {
        return for_everyone(list, who, status, now);
    }
    let entry = match list.iter().position(|r| r.is(who)) {
        Some(i) => &mut list[i],
        None => {
            list.push(ParticipantReceipt {
                jid: who.jid.clone(),
                phone_number: who.phone_number.clone(),
                lid: who.lid.clone(),
                status: "sent".to_owned(),
                at: None,
            });
            list.last_mut()?
        }
    };
    if rank(status) <= rank(&entry.status) {
        return None;
    }
    entry.status = status.to_owned();
    entry.at = Some(now);
    if entry.phone_number.is_none() {
        entry.phone_number = who.phone_number.clone();
    }
    if entry.lid.is_none() {
        entry.lid = who.lid.clone();
    }
    let person = entry.person();
    let least = list
        .iter()
        .map(|r| r.status.as_str())
        .min_by_key(|s| rank(s));
    let overall = least.filter(|s| rank(s) > 0).map(str::to_owned);
    Some(Moved {
        stored: serde_json::to_string(&list).ok()?,
        person,
        overall,
    })
}

/// A receipt naming the group, not a participant (an engine that does not
/// tell them apart): everyone it is forward for moves.
fn for_everyone(
    mut list: Vec<ParticipantReceipt>,
    who: &Party,
    status: &str,
    now: DateTime<Utc>,
) -> Option<Moved> {
    let mut moved = false;
    for entry in list.iter_mut().filter(|r| rank(status) > rank(&r.status)) {
        entry.status = status.to_owned();
        entry.at = Some(now);
        moved = true;
    }
    if !moved {
        return None;
    }
    let least = list
        .iter()
        .map(|r| r.status.as_str())
        .min_by_key(|s| rank(s));
    Some(Moved {
        overall: least.filter(|s| rank(s) > 0).map(str::to_owned),
        stored: serde_json::to_string(&list).ok()?,
        person: who.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(n: &str) -> Party {
        Party {
            jid: format!("{n}@s.whatsapp.net"),
            phone_number: Some(n.to_owned()),
            lid: None,
        }
    }

    fn two() -> String {
        let list = ["62811", "62822"].map(|n| ParticipantReceipt {
            jid: format!("{n}@s.whatsapp.net"),
            phone_number: Some(n.to_owned()),
            lid: Some(format!("{n}99@lid")),
            status: "sent".to_owned(),
            at: None,
        });
        serde_json::to_string(&list).expect("json")
    }

    #[test]
    fn the_message_is_as_far_as_its_slowest_participant() {
        let now = Utc::now();
        let first = record(&two(), &person("62811"), "read", now).expect("moved");
        assert_eq!(first.overall, None, "one has not reported");
        assert_eq!(first.person.lid.as_deref(), Some("6281199@lid"));
        let second = record(&first.stored, &person("62822"), "delivered", now).expect("moved");
        assert_eq!(second.overall.as_deref(), Some("delivered"));
        let third = record(&second.stored, &person("62822"), "read", now).expect("moved");
        assert_eq!(third.overall.as_deref(), Some("read"));
    }

    #[test]
    fn a_receipt_never_goes_back_and_a_newcomer_is_added() {
        let now = Utc::now();
        let read = record(&two(), &person("62811"), "read", now).expect("moved");
        assert_eq!(
            record(&read.stored, &person("62811"), "delivered", now),
            None
        );
        let by_lid = Party {
            jid: "6281199@lid".into(),
            phone_number: None,
            lid: Some("6281199@lid".into()),
        };
        assert_eq!(
            record(&read.stored, &by_lid, "read", now),
            None,
            "the same one"
        );
        let new = record(&read.stored, &person("62833"), "delivered", now).expect("added");
        assert_eq!(list_of(Some(&new.stored)).len(), 3);
        assert_eq!(new.overall, None);
    }

    #[test]
    fn a_receipt_from_the_group_itself_moves_everyone() {
        let group = Party {
            jid: "120363000000000001@g.us".into(),
            phone_number: None,
            lid: None,
        };
        let all = record(&two(), &group, "delivered", Utc::now()).expect("moved");
        assert_eq!(all.overall.as_deref(), Some("delivered"));
        assert_eq!(record(&all.stored, &group, "delivered", Utc::now()), None);
    }
}
