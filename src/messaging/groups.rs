//! Groups: what the group routes ask of an instance's live session (people
//! named by number are looked up on WhatsApp first), and the `group.*`
//! events WhatsApp's reports become.

use std::borrow::Cow;
use std::sync::Arc;

use entity::instances;
use sea_orm::EntityTrait;

use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use uuid::Uuid;

use super::send::{Messenger, SendError};
use super::tracking::party;
use crate::engine::groups::{
    GroupChange, GroupError, GroupEvent, GroupInfo, GroupRef, GroupSession, GroupSummary,
    GroupUpdate, JoinRequest, Joined, ParticipantAction, ParticipantFailure, ParticipantOutcome,
};
use crate::engine::{EngineError, Inbound, NumberInfo, Party, Session};
use crate::webhooks::{EventType, Webhooks};

#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("the instance is not connected to WhatsApp")]
    NotConnected,
    #[error("this engine does not manage groups")]
    Unsupported,
    #[error("`{0}` is neither a phone number nor a user JID")]
    InvalidParticipant(String),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Send(#[from] SendError),
}

impl From<EngineError> for GroupsError {
    fn from(err: EngineError) -> Self {
        Self::Group(GroupError::Engine(err))
    }
}

/// A person a request names, and how it named them.
struct Named {
    given: String,
    /// Their JID, once known; `None` when WhatsApp does not know the number.
    jid: Option<String>,
    phone_number: Option<String>,
    lid: Option<String>,
}

/// One person of a request and what came of them.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The phone number or JID as the request gave it.
    pub given: String,
    pub person: Party,
    pub failure: Option<ParticipantFailure>,
}

impl Messenger {
    /// The live session of an instance, for its group operations.
    fn group_session(&self, instance_id: Uuid) -> Result<Arc<dyn Session>, GroupsError> {
        self.sessions()
            .session(instance_id)
            .ok_or(GroupsError::NotConnected)
    }

    pub async fn list_groups(&self, instance_id: Uuid) -> Result<Vec<GroupSummary>, GroupsError> {
        let session = self.group_session(instance_id)?;
        Ok(groups_of(&*session)?.groups().await?)
    }

    pub async fn group(&self, instance_id: Uuid, jid: &str) -> Result<GroupInfo, GroupsError> {
        let session = self.group_session(instance_id)?;
        Ok(groups_of(&*session)?.group(jid).await?)
    }

    /// Creates a group; numbers WhatsApp does not know fail on their own.
    pub async fn create_group(
        &self,
        instance_id: Uuid,
        subject: &str,
        participants: &[String],
    ) -> Result<(GroupInfo, Vec<Outcome>), GroupsError> {
        let session = self.group_session(instance_id)?;
        let named = self.resolve(&*session, participants, true).await?;
        let jids = known_jids(&named);
        let groups = groups_of(&*session)?;
        let (info, outcomes) = groups.create_group(subject, &jids).await?;
        Ok((info, merge(named, outcomes)))
    }

    pub async fn change_group(
        &self,
        instance_id: Uuid,
        jid: &str,
        change: &GroupChange,
    ) -> Result<GroupInfo, GroupsError> {
        let session = self.group_session(instance_id)?;
        let groups = groups_of(&*session)?;
        if !change.is_empty() {
            groups.change_group(jid, change).await?;
        }
        Ok(groups.group(jid).await?)
    }

    /// Adds, removes, promotes or demotes people, each with its outcome.
    pub async fn change_participants(
        &self,
        instance_id: Uuid,
        jid: &str,
        action: ParticipantAction,
        people: &[String],
    ) -> Result<Vec<Outcome>, GroupsError> {
        let session = self.group_session(instance_id)?;
        // Only someone joining must be on WhatsApp; the others are looked
        // up among the members.
        let named = self
            .resolve(&*session, people, action == ParticipantAction::Add)
            .await?;
        let jids = known_jids(&named);
        let groups = groups_of(&*session)?;
        let outcomes = match jids.is_empty() {
            true => Vec::new(),
            false => groups.change_participants(jid, action, &jids).await?,
        };
        Ok(merge(named, outcomes))
    }

    pub async fn invite_link(
        &self,
        instance_id: Uuid,
        jid: &str,
        revoke: bool,
    ) -> Result<String, GroupsError> {
        let session = self.group_session(instance_id)?;
        Ok(groups_of(&*session)?.invite_link(jid, revoke).await?)
    }

    pub async fn join_group(&self, instance_id: Uuid, invite: &str) -> Result<Joined, GroupsError> {
        let session = self.group_session(instance_id)?;
        Ok(groups_of(&*session)?.join(invite).await?)
    }

    pub async fn leave_group(&self, instance_id: Uuid, jid: &str) -> Result<(), GroupsError> {
        let session = self.group_session(instance_id)?;
        Ok(groups_of(&*session)?.leave(jid).await?)
    }

    pub async fn join_requests(
        &self,
        instance_id: Uuid,
        jid: &str,
    ) -> Result<Vec<JoinRequest>, GroupsError> {
        let session = self.group_session(instance_id)?;
        Ok(groups_of(&*session)?.join_requests(jid).await?)
    }

    pub async fn answer_join_requests(
        &self,
        instance_id: Uuid,
        jid: &str,
        approve: bool,
        people: &[String],
    ) -> Result<Vec<Outcome>, GroupsError> {
        let session = self.group_session(instance_id)?;
        let named = self.resolve(&*session, people, false).await?;
        let jids = known_jids(&named);
        let groups = groups_of(&*session)?;
        let outcomes = groups.answer_join_requests(jid, approve, &jids).await?;
        Ok(merge(named, outcomes))
    }

    /// The people a request names: a user JID as it is, a phone number
    /// normalised and, when `look_up`, looked up on WhatsApp.
    async fn resolve(
        &self,
        session: &dyn Session,
        given: &[String],
        look_up: bool,
    ) -> Result<Vec<Named>, GroupsError> {
        let mut named = Vec::with_capacity(given.len());
        let mut numbers = Vec::new();
        for input in given {
            let input = input.trim();
            if let Some((user, server)) = input.split_once('@') {
                let valid = !user.is_empty()
                    && user.bytes().all(|b| b.is_ascii_digit())
                    && matches!(server, "s.whatsapp.net" | "lid");
                if !valid {
                    return Err(GroupsError::InvalidParticipant(input.to_owned()));
                }
                let lid = server == "lid";
                named.push(Named {
                    given: input.to_owned(),
                    jid: Some(input.to_owned()),
                    phone_number: (!lid).then(|| user.to_owned()),
                    lid: lid.then(|| input.to_owned()),
                });
                continue;
            }
            let number = self.normalize("participants", input)?;
            named.push(Named {
                given: input.to_owned(),
                jid: Some(format!("{number}@s.whatsapp.net")),
                phone_number: Some(number.clone()),
                lid: None,
            });
            numbers.push(number);
        }
        if look_up && !numbers.is_empty() {
            let found = session.check_numbers(&numbers).await?;
            for person in named.iter_mut().filter(|n| n.lid.is_none()) {
                let info = found
                    .iter()
                    .find(|i| Some(&i.phone_number) == person.phone_number.as_ref());
                match info {
                    Some(NumberInfo {
                        registered: true,
                        jid: Some(jid),
                        lid,
                        ..
                    }) => {
                        person.jid = Some(jid.clone());
                        person.lid = lid.clone();
                    }
                    Some(_) => person.jid = None,
                    // A JID given as such is not looked up.
                    None => {}
                }
            }
        }
        Ok(named)
    }
}

/// Whether `to` is a group's JID (`<digits>@g.us`, or the older
/// `<creator>-<time>@g.us`).
pub fn is_group_jid(to: &str) -> bool {
    let Some(id) = to.strip_suffix("@g.us") else {
        return false;
    };
    let mut parts = id.split('-');
    let digits = |p: &str| !p.is_empty() && p.len() <= 24 && p.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits) && parts.next().is_none()
}

/// The inbound messages to record: an instance set to `ignore_groups`
/// drops those of groups.
pub async fn kept<'a>(
    db: &DatabaseConnection,
    instance_id: Uuid,
    messages: &'a [Inbound],
) -> Result<Cow<'a, [Inbound]>, DbErr> {
    if !messages.iter().any(|m| is_group_jid(&m.chat)) {
        return Ok(Cow::Borrowed(messages));
    }
    let ignore = instances::Entity::find_by_id(instance_id)
        .one(db)
        .await?
        .is_some_and(|i| i.ignore_groups);
    if !ignore {
        return Ok(Cow::Borrowed(messages));
    }
    let kept = messages.iter().filter(|m| !is_group_jid(&m.chat));
    Ok(Cow::Owned(kept.cloned().collect()))
}

/// The group `jid`; fails unless the instance is a participant.
pub async fn check_member(session: &dyn Session, jid: &str) -> Result<GroupInfo, SendError> {
    let group = |e: GroupsError| SendError::Group(Box::new(e));
    let groups = groups_of(session).map_err(group)?;
    match groups.group(jid).await {
        Ok(info) => Ok(info),
        Err(GroupError::Engine(e)) => Err(SendError::Engine(e)),
        Err(GroupError::NotAdmin(_)) => {
            Err(group(GroupError::NotParticipant(jid.to_owned()).into()))
        }
        Err(e) => Err(group(e.into())),
    }
}

fn groups_of(session: &dyn Session) -> Result<&dyn GroupSession, GroupsError> {
    session.groups().ok_or(GroupsError::Unsupported)
}

fn known_jids(named: &[Named]) -> Vec<String> {
    named.iter().filter_map(|n| n.jid.clone()).collect()
}

/// Each named person with WhatsApp's outcome for them; someone WhatsApp
/// did not answer for is reported refused.
fn merge(named: Vec<Named>, outcomes: Vec<ParticipantOutcome>) -> Vec<Outcome> {
    named
        .into_iter()
        .map(|n| {
            let asked = Party {
                jid: n.jid.clone().unwrap_or_default(),
                phone_number: n.phone_number.clone(),
                lid: n.lid.clone(),
            };
            let Some(jid) = &n.jid else {
                return Outcome {
                    given: n.given,
                    person: Party {
                        jid: String::new(),
                        ..asked
                    },
                    failure: Some(ParticipantFailure::NotOnWhatsApp),
                };
            };
            let answered = outcomes.iter().find(|o| {
                &o.person.jid == jid || crate::engine::groups::same_person(&o.person, &asked)
            });
            match answered {
                Some(o) => Outcome {
                    given: n.given,
                    person: Party {
                        jid: o.person.jid.clone(),
                        phone_number: o.person.phone_number.clone().or(asked.phone_number),
                        lid: o.person.lid.clone().or(asked.lid),
                    },
                    failure: o.failure.clone(),
                },
                None => Outcome {
                    given: n.given,
                    person: asked,
                    failure: Some(ParticipantFailure::Refused(
                        "WhatsApp did not answer for this participant".into(),
                    )),
                },
            }
        })
        .collect()
}

fn group(g: &GroupRef) -> Value {
    json!({ "jid": g.jid, "subject": g.subject })
}

fn person(p: &Option<Party>) -> Value {
    p.as_ref().map(party).unwrap_or(Value::Null)
}

/// The event type and payload of a group report.
pub fn payload(event: &GroupEvent) -> (EventType, Value) {
    match event {
        GroupEvent::Joined { group: g, by, how } => (
            EventType::GroupJoined,
            json!({ "group": group(g), "by": person(by), "how": how }),
        ),
        GroupEvent::Left { group: g, by, how } => (
            EventType::GroupLeft,
            json!({ "group": group(g), "by": person(by), "how": how }),
        ),
        GroupEvent::Updated {
            group: g,
            by,
            changes,
        } => {
            let mut changed = serde_json::Map::new();
            for change in changes {
                let (key, value) = match change {
                    GroupUpdate::Subject(s) => ("subject", json!(s)),
                    GroupUpdate::Description(d) => ("description", json!(d)),
                    GroupUpdate::Announce(a) => ("announce", json!(a)),
                    GroupUpdate::Locked(l) => ("locked", json!(l)),
                    GroupUpdate::EphemeralSeconds(s) => ("ephemeral_seconds", json!(s)),
                    GroupUpdate::ApprovalRequired(a) => ("approval_required", json!(a)),
                    GroupUpdate::InviteRevoked => ("invite_link_revoked", json!(true)),
                };
                changed.insert(key.to_owned(), value);
            }
            (
                EventType::GroupUpdated,
                json!({ "group": group(g), "by": person(by), "changes": changed }),
            )
        }
        GroupEvent::Participants {
            group: g,
            by,
            action,
            people,
        } => (
            EventType::GroupParticipants,
            json!({
                "group": group(g),
                "by": person(by),
                "action": action.done(),
                "participants": people.iter().map(party).collect::<Vec<_>>(),
            }),
        ),
        GroupEvent::MembershipRequest {
            group: g,
            people,
            state,
        } => (
            EventType::GroupMembershipRequest,
            json!({
                "group": group(g),
                "state": state,
                "requesters": people.iter().map(party).collect::<Vec<_>>(),
            }),
        ),
    }
}

/// Records what WhatsApp reported about a group as its `group.*` event.
pub async fn report(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance_id: Uuid,
    event: &GroupEvent,
) -> Result<(), DbErr> {
    let (event_type, data) = payload(event);
    let txn = crate::db::begin_write(db).await?;
    let mut outbox = hooks.outbox();
    outbox.record(&txn, instance_id, event_type, data).await?;
    txn.commit().await?;
    outbox.committed();
    Ok(())
}
