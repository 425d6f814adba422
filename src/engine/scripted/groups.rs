//! The scripted engine's groups: one pretend WhatsApp shared by every
//! instance it runs. A group an instance creates lists it as super admin,
//! everyone it adds is on WhatsApp, and each change reaches the members
//! that are instances as the `group.*` reports a real server would cause.

use std::collections::BTreeMap;

mod requests;

use chrono::Utc;
use uuid::Uuid;

use super::{ScriptedEngine, ScriptedSession, scripted_lid};
use crate::engine::groups::{
    GroupChange, GroupError, GroupEvent, GroupInfo, GroupMember, GroupRef, GroupRole, GroupSession,
    GroupSettings, GroupSummary, GroupUpdate, JoinRequest, Joined, ParticipantAction,
    ParticipantFailure, ParticipantOutcome, same_person,
};
use crate::engine::{EngineEvent, Party};

/// Every group of the pretend WhatsApp.
#[derive(Default)]
pub(super) struct Groups {
    by_jid: BTreeMap<String, Group>,
    created: u64,
}

struct Group {
    info: GroupInfo,
    invite: String,
    /// How many times the invite was revoked.
    revoked: u64,
    requests: Vec<JoinRequest>,
}

/// A person known by JID, as the scripted directory names them.
pub(super) fn person(jid: &str) -> Party {
    let (user, server) = jid.split_once('@').unwrap_or((jid, ""));
    match server {
        "lid" => Party {
            jid: jid.to_owned(),
            phone_number: None,
            lid: Some(jid.to_owned()),
        },
        _ => Party {
            jid: jid.to_owned(),
            phone_number: Some(user.to_owned()),
            lid: Some(scripted_lid(user)),
        },
    }
}

fn invite_code(jid: &str, generation: u64) -> String {
    let digits: String = jid.chars().filter(char::is_ascii_digit).collect();
    format!("SCRIPTED{digits}G{generation}")
}

fn reference(info: &GroupInfo) -> GroupRef {
    GroupRef {
        jid: info.jid.clone(),
        subject: Some(info.subject.clone()),
    }
}

/// Reports to deliver once the state is unlocked.
#[derive(Default)]
struct Reports {
    /// Instances and the person each is on WhatsApp.
    owners: Vec<(Uuid, Party)>,
    out: Vec<(Uuid, EngineEvent)>,
}

impl Reports {
    /// Tells every instance that is a member of `info`.
    fn members(&mut self, info: &GroupInfo, event: GroupEvent) {
        for (id, who) in &self.owners {
            if info.member(who).is_some() {
                self.out.push((*id, EngineEvent::Group(event.clone())));
            }
        }
    }

    /// Tells the instances that are `people`.
    fn people(&mut self, people: &[Party], event: &GroupEvent) {
        for (id, who) in &self.owners {
            if people.iter().any(|p| same_person(p, who)) {
                self.out.push((*id, EngineEvent::Group(event.clone())));
            }
        }
    }
}

impl ScriptedSession {
    /// Runs `f` on the groups with this instance's person, then delivers
    /// the reports it made.
    async fn on_groups<T>(
        &self,
        f: impl FnOnce(&mut Groups, &Party, &mut Reports) -> Result<T, GroupError>,
    ) -> Result<T, GroupError> {
        let (answer, reports) = {
            let mut guard = self.engine.lock();
            let state = &mut *guard;
            let mut reports = Reports {
                owners: state.owners(),
                out: Vec::new(),
            };
            let me = ScriptedEngine::own(state, self.instance_id);
            (f(&mut state.groups, &me, &mut reports), reports)
        };
        deliver(&self.engine, reports.out).await;
        answer
    }
}

async fn deliver(engine: &ScriptedEngine, reports: Vec<(Uuid, EngineEvent)>) {
    for (id, event) in reports {
        engine.emit(id, event).await;
    }
}

impl Groups {
    /// A group the instance `me` is in.
    fn joined(&mut self, jid: &str, me: &Party) -> Result<&mut Group, GroupError> {
        let group = self
            .by_jid
            .get_mut(jid)
            .ok_or_else(|| GroupError::NotFound(jid.to_owned()))?;
        if group.info.member(me).is_none() {
            return Err(GroupError::NotParticipant(jid.to_owned()));
        }
        Ok(group)
    }

    /// A group the instance `me` administers.
    fn administered(&mut self, jid: &str, me: &Party) -> Result<&mut Group, GroupError> {
        let group = self.joined(jid, me)?;
        match group.info.member(me) {
            Some(m) if m.role.is_admin() => Ok(group),
            _ => Err(GroupError::NotAdmin(jid.to_owned())),
        }
    }
}

fn position(info: &GroupInfo, who: &Party) -> Option<usize> {
    info.participants
        .iter()
        .position(|m| same_person(&m.person, who))
}

#[async_trait::async_trait]
impl GroupSession for ScriptedSession {
    async fn groups(&self) -> Result<Vec<GroupSummary>, GroupError> {
        self.on_groups(|groups, me, _| {
            Ok(groups
                .by_jid
                .values()
                .filter_map(|g| {
                    let member = g.info.member(me)?;
                    Some(GroupSummary {
                        jid: g.info.jid.clone(),
                        subject: g.info.subject.clone(),
                        size: g.info.participants.len() as u32,
                        is_admin: member.role.is_admin(),
                    })
                })
                .collect())
        })
        .await
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), GroupError> {
        self.on_groups(|groups, me, reports| {
            groups.created += 1;
            let jid = format!("1203630000{:08}@g.us", groups.created);
            let mut members = vec![GroupMember {
                person: me.clone(),
                role: GroupRole::SuperAdmin,
            }];
            let mut outcomes = Vec::new();
            for p in participants {
                let who = person(p);
                let failure = if members.iter().any(|m| same_person(&m.person, &who)) {
                    Some(ParticipantFailure::AlreadyParticipant)
                } else {
                    members.push(GroupMember {
                        person: who.clone(),
                        role: GroupRole::Member,
                    });
                    None
                };
                outcomes.push(ParticipantOutcome {
                    person: who,
                    failure,
                });
            }
            let info = GroupInfo {
                jid: jid.clone(),
                subject: subject.to_owned(),
                description: None,
                owner: Some(me.clone()),
                created_at: Some(Utc::now()),
                settings: GroupSettings::default(),
                participants: members,
            };
            let joined = GroupEvent::Joined {
                group: reference(&info),
                by: Some(me.clone()),
                how: "created",
            };
            reports.people(std::slice::from_ref(me), &joined);
            let added: Vec<Party> = info.participants[1..]
                .iter()
                .map(|m| m.person.clone())
                .collect();
            let others = GroupEvent::Joined {
                group: reference(&info),
                by: Some(me.clone()),
                how: "added",
            };
            reports.people(&added, &others);
            groups.by_jid.insert(
                jid.clone(),
                Group {
                    invite: invite_code(&jid, 0),
                    revoked: 0,
                    info: info.clone(),
                    requests: Vec::new(),
                },
            );
            Ok((info, outcomes))
        })
        .await
    }

    async fn group(&self, jid: &str) -> Result<GroupInfo, GroupError> {
        self.on_groups(|groups, me, _| Ok(groups.joined(jid, me)?.info.clone()))
            .await
    }

    async fn change_group(&self, jid: &str, change: &GroupChange) -> Result<(), GroupError> {
        self.on_groups(|groups, me, reports| {
            let group = groups.joined(jid, me)?;
            let is_admin = group.info.member(me).is_some_and(|m| m.role.is_admin());
            let settings = change.announce.is_some()
                || change.locked.is_some()
                || change.approval_required.is_some();
            if !is_admin && (settings || group.info.settings.locked) {
                return Err(GroupError::NotAdmin(jid.to_owned()));
            }
            let info = &mut group.info;
            let mut changes = Vec::new();
            if let Some(subject) = &change.subject {
                info.subject = subject.clone();
                changes.push(GroupUpdate::Subject(subject.clone()));
            }
            if let Some(description) = &change.description {
                info.description = description.clone();
                changes.push(GroupUpdate::Description(description.clone()));
            }
            if let Some(announce) = change.announce {
                info.settings.announce = announce;
                changes.push(GroupUpdate::Announce(announce));
            }
            if let Some(locked) = change.locked {
                info.settings.locked = locked;
                changes.push(GroupUpdate::Locked(locked));
            }
            if let Some(seconds) = change.ephemeral_seconds {
                info.settings.ephemeral_seconds = seconds;
                changes.push(GroupUpdate::EphemeralSeconds(seconds));
            }
            if let Some(approval) = change.approval_required {
                info.settings.approval_required = approval;
                changes.push(GroupUpdate::ApprovalRequired(approval));
            }
            let event = GroupEvent::Updated {
                group: reference(info),
                by: Some(me.clone()),
                changes,
            };
            let info = info.clone();
            reports.members(&info, event);
            Ok(())
        })
        .await
    }

    async fn change_participants(
        &self,
        jid: &str,
        action: ParticipantAction,
        participants: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError> {
        self.on_groups(|groups, me, reports| {
            let group = groups.administered(jid, me)?;
            let before = group.info.clone();
            let info = &mut group.info;
            let mut outcomes = Vec::new();
            let mut changed = Vec::new();
            for p in participants {
                let who = person(p);
                let at = position(info, &who);
                let failure = match (action, at) {
                    (ParticipantAction::Add, Some(_)) => {
                        Some(ParticipantFailure::AlreadyParticipant)
                    }
                    (ParticipantAction::Add, None) => {
                        info.participants.push(GroupMember {
                            person: who.clone(),
                            role: GroupRole::Member,
                        });
                        None
                    }
                    (_, None) => Some(ParticipantFailure::NotParticipant),
                    (_, Some(at)) if info.participants[at].role == GroupRole::SuperAdmin => Some(
                        ParticipantFailure::Refused("the group's creator cannot be changed".into()),
                    ),
                    (ParticipantAction::Remove, Some(at)) => {
                        info.participants.remove(at);
                        None
                    }
                    (ParticipantAction::Promote, Some(at)) => {
                        info.participants[at].role = GroupRole::Admin;
                        None
                    }
                    (ParticipantAction::Demote, Some(at)) => {
                        info.participants[at].role = GroupRole::Member;
                        None
                    }
                };
                let person = match position(info, &who) {
                    Some(at) => info.participants[at].person.clone(),
                    None => who,
                };
                if failure.is_none() {
                    changed.push(person.clone());
                }
                outcomes.push(ParticipantOutcome { person, failure });
            }
            if !changed.is_empty() {
                let event = GroupEvent::Participants {
                    group: reference(info),
                    by: Some(me.clone()),
                    action,
                    people: changed.clone(),
                };
                let after = info.clone();
                // Those removed hear it too, as they leave.
                reports.members(&before, event.clone());
                if action == ParticipantAction::Add {
                    reports.people(
                        &changed,
                        &GroupEvent::Joined {
                            group: reference(&after),
                            by: Some(me.clone()),
                            how: "added",
                        },
                    );
                }
                if action == ParticipantAction::Remove {
                    reports.people(
                        &changed,
                        &GroupEvent::Left {
                            group: reference(&after),
                            by: Some(me.clone()),
                            how: "removed",
                        },
                    );
                }
            }
            Ok(outcomes)
        })
        .await
    }

    async fn invite_link(&self, jid: &str, revoke: bool) -> Result<String, GroupError> {
        self.on_groups(|groups, me, reports| {
            let group = groups.administered(jid, me)?;
            if revoke {
                group.revoked += 1;
                group.invite = invite_code(jid, group.revoked);
                let event = GroupEvent::Updated {
                    group: reference(&group.info),
                    by: Some(me.clone()),
                    changes: vec![GroupUpdate::InviteRevoked],
                };
                reports.members(&group.info, event);
            }
            Ok(format!("https://chat.whatsapp.com/{}", group.invite))
        })
        .await
    }

    async fn join(&self, invite: &str) -> Result<Joined, GroupError> {
        self.join_by_invite(invite).await
    }

    async fn leave(&self, jid: &str) -> Result<(), GroupError> {
        self.on_groups(|groups, me, reports| {
            let group = groups.joined(jid, me)?;
            if let Some(at) = position(&group.info, me) {
                group.info.participants.remove(at);
            }
            let left = GroupEvent::Left {
                group: reference(&group.info),
                by: Some(me.clone()),
                how: "left",
            };
            reports.people(std::slice::from_ref(me), &left);
            reports.members(
                &group.info,
                GroupEvent::Participants {
                    group: reference(&group.info),
                    by: Some(me.clone()),
                    action: ParticipantAction::Remove,
                    people: vec![me.clone()],
                },
            );
            Ok(())
        })
        .await
    }

    async fn join_requests(&self, jid: &str) -> Result<Vec<JoinRequest>, GroupError> {
        self.on_groups(|groups, me, _| Ok(groups.administered(jid, me)?.requests.clone()))
            .await
    }

    async fn answer_join_requests(
        &self,
        jid: &str,
        approve: bool,
        people: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError> {
        self.answer_requests(jid, approve, people).await
    }
}
