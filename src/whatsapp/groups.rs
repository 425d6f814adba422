//! Groups through whatsapp-rust: the group operations of a live client,
//! and w:gp2 notifications in the gateway's words.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use whatsapp_rust::features::{
    GroupCreateOptions, GroupDescription, GroupError as WaGroupError, GroupMetadata,
    GroupParticipantOptions, GroupSubject, JoinGroupResult, MembershipApprovalMode,
    ParticipantChangeResponse, ParticipantType, PreviousDescription,
};
use whatsapp_rust::types::events::GroupUpdate as WaGroupUpdate;
use whatsapp_rust::wacore::stanza::groups::{
    GroupNotificationAction as Action, GroupParticipantInfo,
};
use whatsapp_rust::{Client, IqError, Jid};

use super::translate::{bare, party};
use crate::engine::groups::{
    GroupChange, GroupError, GroupEvent, GroupInfo, GroupMember, GroupRef, GroupRole, GroupSession,
    GroupSettings, GroupSummary, GroupUpdate, JoinRequest, Joined, ParticipantAction,
    ParticipantFailure, ParticipantOutcome,
};
use crate::engine::{EngineError, EngineEvent, Party};

/// The group operations of one live client.
pub struct WaGroups(pub Arc<Client>);

fn jid(s: &str) -> Result<Jid, GroupError> {
    s.parse()
        .map_err(|e| EngineError::Other(format!("`{s}` is not a JID: {e}")).into())
}

fn jids(list: &[String]) -> Result<Vec<Jid>, GroupError> {
    list.iter().map(|s| jid(s)).collect()
}

/// whatsapp-rust's refusal in the gateway's words; `group` names the group
/// asked about.
fn refused(group: &str, err: WaGroupError) -> GroupError {
    match err {
        WaGroupError::Iq(IqError::ServerError { code, .. }) => match code {
            404 => GroupError::NotFound(group.to_owned()),
            401 | 403 => GroupError::NotAdmin(group.to_owned()),
            406 | 410 => GroupError::InviteNotFound,
            _ => EngineError::Refused(err.to_string()).into(),
        },
        WaGroupError::Iq(IqError::Timeout) => EngineError::Timeout(err.to_string()).into(),
        WaGroupError::Iq(IqError::NotConnected) => EngineError::NotConnected.into(),
        WaGroupError::DescriptionConflict => GroupError::DescriptionConflict,
        other => EngineError::Refused(other.to_string()).into(),
    }
}

fn role(t: &ParticipantType) -> GroupRole {
    match t {
        ParticipantType::Member => GroupRole::Member,
        ParticipantType::Admin => GroupRole::Admin,
        ParticipantType::SuperAdmin => GroupRole::SuperAdmin,
    }
}

fn time(seconds: Option<u64>) -> Option<chrono::DateTime<Utc>> {
    Utc.timestamp_opt(i64::try_from(seconds?).ok()?, 0).single()
}

fn info(meta: GroupMetadata) -> GroupInfo {
    GroupInfo {
        jid: bare(&meta.id),
        subject: meta.subject,
        description: meta.description,
        owner: meta
            .creator
            .as_ref()
            .map(|c| party(c, meta.creator_pn.as_ref())),
        created_at: time(meta.creation_time),
        settings: GroupSettings {
            announce: meta.is_announcement,
            locked: meta.is_locked,
            ephemeral_seconds: meta.ephemeral.and_then(|e| e.expiration).unwrap_or(0),
            approval_required: meta.membership_approval,
        },
        participants: meta
            .participants
            .iter()
            .map(|p| GroupMember {
                person: party(
                    &p.jid,
                    p.phone_number
                        .as_ref()
                        .or(p.lid.as_ref())
                        .filter(|a| **a != p.jid),
                ),
                role: role(&p.participant_type),
            })
            .collect(),
    }
}

/// One participant's answer: WhatsApp's error codes are HTTP-like.
fn outcome(r: &ParticipantChangeResponse, action: ParticipantAction) -> ParticipantOutcome {
    let failure = r.error.as_deref().map(|code| match (code, action) {
        ("409", ParticipantAction::Add) => ParticipantFailure::AlreadyParticipant,
        ("404", ParticipantAction::Add) => ParticipantFailure::NotOnWhatsApp,
        ("404", _) => ParticipantFailure::NotParticipant,
        ("403", ParticipantAction::Add) => ParticipantFailure::InviteRequired,
        (other, _) => ParticipantFailure::Refused(format!("WhatsApp answered {other}")),
    });
    ParticipantOutcome {
        person: party(&r.jid, r.phone_number.as_ref()),
        failure,
    }
}

impl WaGroups {
    fn connected(&self) -> Result<(), GroupError> {
        match self.0.is_connected() {
            true => Ok(()),
            false => Err(EngineError::NotConnected.into()),
        }
    }

    /// Whether `person` is this device's own account.
    fn is_me(&self, person: &Party) -> bool {
        let mine = [self.0.pn(), self.0.lid()];
        mine.iter().flatten().any(|j| bare(j) == person.jid)
    }
}

#[async_trait::async_trait]
impl GroupSession for WaGroups {
    async fn groups(&self) -> Result<Vec<GroupSummary>, GroupError> {
        self.connected()?;
        let groups = self.0.groups().get_participating().await;
        let groups = groups.map_err(|e| refused("", e))?;
        let mut list: Vec<GroupSummary> = groups
            .into_values()
            .map(|meta| {
                let info = info(meta);
                GroupSummary {
                    size: info.participants.len() as u32,
                    is_admin: info
                        .participants
                        .iter()
                        .any(|m| m.role.is_admin() && self.is_me(&m.person)),
                    jid: info.jid,
                    subject: info.subject,
                }
            })
            .collect();
        list.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(list)
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), GroupError> {
        self.connected()?;
        let people = jids(participants)?;
        let options = GroupCreateOptions::new(subject).with_participants(
            people
                .iter()
                .cloned()
                .map(GroupParticipantOptions::new)
                .collect(),
        );
        let created = self.0.groups().create_group(options).await;
        let group = info(created.map_err(|e| refused("", e))?.metadata);
        let outcomes = people
            .iter()
            .map(|p| {
                let asked = party(p, None);
                match group.member(&asked) {
                    Some(m) => ParticipantOutcome {
                        person: m.person.clone(),
                        failure: None,
                    },
                    None => ParticipantOutcome {
                        person: asked,
                        failure: Some(ParticipantFailure::Refused(
                            "WhatsApp did not add this participant".into(),
                        )),
                    },
                }
            })
            .collect();
        Ok((group, outcomes))
    }

    async fn group(&self, group: &str) -> Result<GroupInfo, GroupError> {
        self.connected()?;
        let meta = self.0.groups().get_metadata(&jid(group)?).await;
        Ok(info(meta.map_err(|e| refused(group, e))?))
    }

    async fn change_group(&self, group: &str, change: &GroupChange) -> Result<(), GroupError> {
        self.connected()?;
        let g = jid(group)?;
        let api = self.0.groups();
        let fail = |e| refused(group, e);
        if let Some(subject) = &change.subject {
            let subject = GroupSubject::new(subject.as_str())
                .map_err(|e| EngineError::Refused(e.to_string()))?;
            api.set_subject(g.clone(), subject).await.map_err(fail)?;
        }
        if let Some(description) = &change.description {
            let description = description
                .as_deref()
                .map(GroupDescription::new)
                .transpose()
                .map_err(|e| EngineError::Refused(e.to_string()))?;
            api.set_description(g.clone(), description, PreviousDescription::Resolve)
                .await
                .map_err(fail)?;
        }
        if let Some(announce) = change.announce {
            api.set_announce(g.clone(), announce).await.map_err(fail)?;
        }
        if let Some(locked) = change.locked {
            api.set_locked(g.clone(), locked).await.map_err(fail)?;
        }
        if let Some(seconds) = change.ephemeral_seconds {
            api.set_ephemeral(g.clone(), seconds).await.map_err(fail)?;
        }
        if let Some(approval) = change.approval_required {
            let mode = match approval {
                true => MembershipApprovalMode::On,
                false => MembershipApprovalMode::Off,
            };
            api.set_membership_approval(g, mode).await.map_err(fail)?;
        }
        Ok(())
    }

    async fn change_participants(
        &self,
        group: &str,
        action: ParticipantAction,
        participants: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError> {
        self.connected()?;
        let (g, people) = (jid(group)?, jids(participants)?);
        let api = self.0.groups();
        let answered = match action {
            ParticipantAction::Add => api.add_participants(g, &people).await,
            ParticipantAction::Remove => api.remove_participants(g, &people).await,
            ParticipantAction::Promote => api.promote_participants(g, &people).await,
            ParticipantAction::Demote => api.demote_participants(g, &people).await,
        };
        let answered = answered.map_err(|e| refused(group, e))?;
        Ok(answered.iter().map(|r| outcome(r, action)).collect())
    }

    async fn invite_link(&self, group: &str, revoke: bool) -> Result<String, GroupError> {
        self.connected()?;
        let link = self.0.groups().get_invite_link(jid(group)?, revoke).await;
        let code = link.map_err(|e| refused(group, e))?;
        Ok(match code.starts_with("https://") {
            true => code,
            false => format!("https://chat.whatsapp.com/{code}"),
        })
    }

    async fn join(&self, invite: &str) -> Result<Joined, GroupError> {
        self.connected()?;
        let joined = self.0.groups().join_with_invite_code(invite).await;
        Ok(match joined.map_err(|e| refused("", e))? {
            JoinGroupResult::Joined(g) => Joined::Member(bare(&g)),
            JoinGroupResult::PendingApproval(g) => Joined::PendingApproval(bare(&g)),
        })
    }

    async fn leave(&self, group: &str) -> Result<(), GroupError> {
        self.connected()?;
        let left = self.0.groups().leave(jid(group)?).await;
        left.map_err(|e| refused(group, e))
    }

    async fn join_requests(&self, group: &str) -> Result<Vec<JoinRequest>, GroupError> {
        self.connected()?;
        let requests = self.0.groups().get_membership_requests(jid(group)?).await;
        Ok(requests
            .map_err(|e| refused(group, e))?
            .iter()
            .map(|r| JoinRequest {
                person: party(&r.jid, None),
                requested_at: time(r.request_time),
            })
            .collect())
    }

    async fn answer_join_requests(
        &self,
        group: &str,
        approve: bool,
        people: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError> {
        self.connected()?;
        let (g, people) = (jid(group)?, jids(people)?);
        let api = self.0.groups();
        let answered = match approve {
            true => api.approve_membership_requests(g, &people).await,
            false => api.reject_membership_requests(g, &people).await,
        };
        let answered = answered.map_err(|e| refused(group, e))?;
        Ok(answered
            .iter()
            .map(|r| outcome(r, ParticipantAction::Add))
            .collect())
    }
}

fn member(p: &GroupParticipantInfo) -> Party {
    party(&p.jid, p.phone_number.as_ref().or(p.lid.as_ref()))
}

/// A w:gp2 notification as group events. `mine` are the device's own JIDs
/// (phone number and LID): a change naming the instance itself is also
/// reported as joining or leaving.
pub fn notification(update: &WaGroupUpdate, mine: &[Jid]) -> Vec<EngineEvent> {
    let group = GroupRef {
        jid: bare(&update.group_jid),
        subject: None,
    };
    let by = update
        .participant
        .as_ref()
        .map(|p| party(p, update.participant_pn.as_ref()));
    let is_me = |p: &Party| {
        mine.iter()
            .any(|j| bare(j) == p.jid || Some(bare(j)) == p.lid)
    };
    let changed = |changes: Vec<GroupUpdate>| GroupEvent::Updated {
        group: group.clone(),
        by: by.clone(),
        changes,
    };
    let people = |action: ParticipantAction, list: &[GroupParticipantInfo]| {
        let people: Vec<Party> = list.iter().map(member).collect();
        let mut events = Vec::new();
        if people.iter().any(is_me) {
            match action {
                ParticipantAction::Add => events.push(GroupEvent::Joined {
                    group: group.clone(),
                    by: by.clone(),
                    how: if by.as_ref().is_some_and(is_me) {
                        "invite"
                    } else {
                        "added"
                    },
                }),
                ParticipantAction::Remove => events.push(GroupEvent::Left {
                    group: group.clone(),
                    by: by.clone(),
                    how: if by.as_ref().is_some_and(is_me) {
                        "left"
                    } else {
                        "removed"
                    },
                }),
                _ => {}
            }
        }
        events.push(GroupEvent::Participants {
            group: group.clone(),
            by: by.clone(),
            action,
            people,
        });
        events
    };
    let events = match &update.action {
        Action::Add { participants, .. } => people(ParticipantAction::Add, participants),
        Action::Remove { participants, .. } => people(ParticipantAction::Remove, participants),
        Action::Promote { participants } => people(ParticipantAction::Promote, participants),
        Action::Demote { participants } => people(ParticipantAction::Demote, participants),
        Action::Subject { subject, .. } => {
            vec![changed(vec![GroupUpdate::Subject(subject.clone())])]
        }
        Action::Description { description, .. } => {
            vec![changed(vec![GroupUpdate::Description(description.clone())])]
        }
        Action::Locked { .. } => vec![changed(vec![GroupUpdate::Locked(true)])],
        Action::Unlocked => vec![changed(vec![GroupUpdate::Locked(false)])],
        Action::Announce => vec![changed(vec![GroupUpdate::Announce(true)])],
        Action::NotAnnounce => vec![changed(vec![GroupUpdate::Announce(false)])],
        Action::Ephemeral { expiration, .. } => {
            vec![changed(vec![GroupUpdate::EphemeralSeconds(*expiration)])]
        }
        Action::MembershipApprovalMode { enabled } => {
            vec![changed(vec![GroupUpdate::ApprovalRequired(*enabled)])]
        }
        Action::RevokeInvite => vec![changed(vec![GroupUpdate::InviteRevoked])],
        Action::MembershipApprovalRequest { .. } => vec![GroupEvent::MembershipRequest {
            group: group.clone(),
            people: by.iter().cloned().collect(),
            state: "created",
        }],
        Action::CreatedMembershipRequests { requests, .. } => {
            vec![GroupEvent::MembershipRequest {
                group: group.clone(),
                people: requests.iter().map(member).collect(),
                state: "created",
            }]
        }
        Action::RevokedMembershipRequests { participants } => {
            vec![GroupEvent::MembershipRequest {
                group: group.clone(),
                people: participants.iter().map(|j| party(j, None)).collect(),
                state: "revoked",
            }]
        }
        Action::Create { raw } => vec![GroupEvent::Joined {
            // The new group's subject rides in its `<group>` node.
            group: GroupRef {
                subject: raw
                    .get_optional_child("group")
                    .and_then(|g| g.attrs.get("subject"))
                    .map(|s| s.as_str().into_owned()),
                ..group.clone()
            },
            by: by.clone(),
            how: if by.as_ref().is_some_and(is_me) {
                "created"
            } else {
                "added"
            },
        }],
        Action::Delete { .. } => vec![GroupEvent::Left {
            group: group.clone(),
            by: by.clone(),
            how: "deleted",
        }],
        _ => Vec::new(),
    };
    events.into_iter().map(EngineEvent::Group).collect()
}

#[cfg(test)]
mod tests;
