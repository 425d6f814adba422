//! Joining the scripted engine's groups: by invite, straight in or
//! waiting for an admin's approval, and the admins' answers.

use chrono::Utc;

use super::{GroupMember, GroupRole, person, reference};
use crate::engine::Party;
use crate::engine::groups::{
    GroupError, GroupEvent, JoinRequest, Joined, ParticipantAction, ParticipantFailure,
    ParticipantOutcome, same_person,
};
use crate::engine::scripted::ScriptedSession;

impl ScriptedSession {
    pub(super) async fn join_by_invite(&self, invite: &str) -> Result<Joined, GroupError> {
        let code = invite.rsplit('/').next().unwrap_or(invite).to_owned();
        self.on_groups(|groups, me, reports| {
            let group = groups
                .by_jid
                .values_mut()
                .find(|g| g.invite == code)
                .ok_or(GroupError::InviteNotFound)?;
            let jid = group.info.jid.clone();
            if group.info.member(me).is_some() {
                return Ok(Joined::Member(jid));
            }
            if group.info.settings.approval_required {
                if !group.requests.iter().any(|r| same_person(&r.person, me)) {
                    group.requests.push(JoinRequest {
                        person: me.clone(),
                        requested_at: Some(Utc::now()),
                    });
                }
                let admins: Vec<Party> = group
                    .info
                    .participants
                    .iter()
                    .filter(|m| m.role.is_admin())
                    .map(|m| m.person.clone())
                    .collect();
                let event = GroupEvent::MembershipRequest {
                    group: reference(&group.info),
                    people: vec![me.clone()],
                    state: "created",
                };
                reports.people(&admins, &event);
                return Ok(Joined::PendingApproval(jid));
            }
            let before = group.info.clone();
            group.info.participants.push(GroupMember {
                person: me.clone(),
                role: GroupRole::Member,
            });
            reports.members(
                &before,
                GroupEvent::Participants {
                    group: reference(&before),
                    by: None,
                    action: ParticipantAction::Add,
                    people: vec![me.clone()],
                },
            );
            let joined = GroupEvent::Joined {
                group: reference(&group.info),
                by: None,
                how: "invite",
            };
            reports.people(std::slice::from_ref(me), &joined);
            Ok(Joined::Member(jid))
        })
        .await
    }

    pub(super) async fn answer_requests(
        &self,
        jid: &str,
        approve: bool,
        people: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError> {
        self.on_groups(|groups, me, reports| {
            let group = groups.administered(jid, me)?;
            let mut outcomes = Vec::new();
            let mut answered = Vec::new();
            for p in people {
                let who = person(p);
                let Some(at) = group
                    .requests
                    .iter()
                    .position(|r| same_person(&r.person, &who))
                else {
                    outcomes.push(ParticipantOutcome {
                        person: who,
                        failure: Some(ParticipantFailure::Refused(
                            "no request to join from this person".into(),
                        )),
                    });
                    continue;
                };
                let request = group.requests.remove(at);
                answered.push(request.person.clone());
                outcomes.push(ParticipantOutcome {
                    person: request.person,
                    failure: None,
                });
            }
            if answered.is_empty() {
                return Ok(outcomes);
            }
            if approve {
                let before = group.info.clone();
                for who in &answered {
                    group.info.participants.push(GroupMember {
                        person: who.clone(),
                        role: GroupRole::Member,
                    });
                }
                reports.members(
                    &before,
                    GroupEvent::Participants {
                        group: reference(&before),
                        by: Some(me.clone()),
                        action: ParticipantAction::Add,
                        people: answered.clone(),
                    },
                );
                let joined = GroupEvent::Joined {
                    group: reference(&group.info),
                    by: Some(me.clone()),
                    how: "approved",
                };
                reports.people(&answered, &joined);
            } else {
                let event = GroupEvent::MembershipRequest {
                    group: reference(&group.info),
                    people: answered,
                    state: "rejected",
                };
                reports.members(&group.info, event);
            }
            Ok(outcomes)
        })
        .await
    }
}
