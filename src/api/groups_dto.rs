//! What the group routes take and answer, and how the domain's groups
//! become it.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};

use super::text::Text;
use crate::engine::Party;
use crate::engine::groups::{
    GroupInfo, GroupMember, GroupRole, GroupSummary, JoinRequest, ParticipantAction,
};
use crate::messaging::groups::Outcome;

/// A person, by every address WhatsApp knows them by.
#[derive(Debug, Object)]
#[oai(rename = "GroupPerson")]
pub struct Person {
    pub jid: String,
    /// E.164 digits, when known.
    pub phone_number: Option<String>,
    pub lid: Option<String>,
}

impl From<Party> for Person {
    fn from(p: Party) -> Self {
        Self {
            jid: p.jid,
            phone_number: p.phone_number,
            lid: p.lid,
        }
    }
}

#[derive(Debug, Object)]
pub struct GroupListItem {
    pub jid: String,
    pub subject: String,
    /// How many participants it has.
    pub size: u32,
    /// Whether the instance is one of its admins.
    pub is_admin: bool,
}

impl From<GroupSummary> for GroupListItem {
    fn from(g: GroupSummary) -> Self {
        Self {
            jid: g.jid,
            subject: g.subject,
            size: g.size,
            is_admin: g.is_admin,
        }
    }
}

#[derive(Debug, Object)]
pub struct GroupList {
    pub items: Vec<GroupListItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    /// The creator.
    Superadmin,
}

impl From<GroupRole> for Role {
    fn from(r: GroupRole) -> Self {
        match r {
            GroupRole::Member => Self::Member,
            GroupRole::Admin => Self::Admin,
            GroupRole::SuperAdmin => Self::Superadmin,
        }
    }
}

#[derive(Debug, Object)]
pub struct Participant {
    pub jid: String,
    pub phone_number: Option<String>,
    pub lid: Option<String>,
    pub role: Role,
}

impl From<GroupMember> for Participant {
    fn from(m: GroupMember) -> Self {
        Self {
            jid: m.person.jid,
            phone_number: m.person.phone_number,
            lid: m.person.lid,
            role: m.role.into(),
        }
    }
}

#[derive(Debug, Object)]
pub struct GroupSettingsView {
    /// Only admins send messages.
    pub announce: bool,
    /// Only admins edit the subject, description and settings.
    pub locked: bool,
    /// Messages disappear after this many seconds; 0 is off.
    pub ephemeral_seconds: u32,
    /// Joining by invite needs an admin's approval.
    pub approval_required: bool,
}

#[derive(Debug, Object)]
pub struct Group {
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    /// Who created it, when WhatsApp says.
    pub owner: Option<Person>,
    pub created_at: Option<DateTime<Utc>>,
    pub settings: GroupSettingsView,
    pub size: u32,
    pub participants: Vec<Participant>,
}

impl From<GroupInfo> for Group {
    fn from(g: GroupInfo) -> Self {
        Self {
            jid: g.jid,
            subject: g.subject,
            description: g.description,
            owner: g.owner.map(Into::into),
            created_at: g.created_at,
            settings: GroupSettingsView {
                announce: g.settings.announce,
                locked: g.settings.locked,
                ephemeral_seconds: g.settings.ephemeral_seconds,
                approval_required: g.settings.approval_required,
            },
            size: g.participants.len() as u32,
            participants: g.participants.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateGroup {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub subject: Text,
    /// Phone numbers (or user JIDs) to add; the instance is added as the
    /// group's creator.
    #[oai(validator(max_items = 256))]
    pub participants: Vec<Text>,
}

/// Why one participant of a request was not changed.
#[derive(Debug, Object)]
pub struct ParticipantError {
    /// `participant_not_on_whatsapp`, `already_a_participant`,
    /// `not_a_participant`, `invite_required` or `participant_refused`.
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Object)]
pub struct ParticipantResult {
    /// The phone number or JID as the request gave it.
    pub participant: String,
    pub ok: bool,
    /// Who it is on WhatsApp; absent when WhatsApp does not know the number.
    pub person: Option<Person>,
    pub error: Option<ParticipantError>,
}

impl From<Outcome> for ParticipantResult {
    fn from(o: Outcome) -> Self {
        let error = o.failure.map(|f| ParticipantError {
            code: f.code().to_owned(),
            detail: match f {
                crate::engine::groups::ParticipantFailure::Refused(why) => why,
                other => other.code().replace('_', " "),
            },
        });
        Self {
            participant: o.given,
            ok: error.is_none(),
            person: (!o.person.jid.is_empty()).then(|| o.person.into()),
            error,
        }
    }
}

#[derive(Debug, Object)]
pub struct CreatedGroup {
    pub group: Group,
    /// One entry per requested participant, in order.
    pub participants: Vec<ParticipantResult>,
}

/// What to change; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateGroup {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub subject: Option<Text>,
    /// The description; an empty string removes it.
    #[oai(validator(max_length = 2048))]
    pub description: Option<Text>,
    /// Only admins send messages.
    pub announce: Option<bool>,
    /// Only admins edit the group.
    pub locked: Option<bool>,
    /// Disappearing messages in whole days (86400 = 24 h, 604800 = 7 days,
    /// 7776000 = 90 days); 0 turns them off.
    #[oai(validator(
        minimum(value = "0"),
        maximum(value = "7776000"),
        multiple_of = "86400"
    ))]
    pub ephemeral_seconds: Option<u32>,
    /// Joining by invite needs an admin's approval.
    pub approval_required: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Action {
    Add,
    Remove,
    Promote,
    Demote,
}

impl From<Action> for ParticipantAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Add => Self::Add,
            Action::Remove => Self::Remove,
            Action::Promote => Self::Promote,
            Action::Demote => Self::Demote,
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ChangeParticipants {
    pub action: Action,
    /// Phone numbers or user JIDs (`…@s.whatsapp.net`, `…@lid`).
    #[oai(validator(min_items = 1, max_items = 256))]
    pub participants: Vec<Text>,
}

#[derive(Debug, Object)]
pub struct ParticipantsChanged {
    pub action: Action,
    /// One entry per requested participant, in order.
    pub results: Vec<ParticipantResult>,
}

#[derive(Debug, Object)]
pub struct InviteLink {
    pub group_jid: String,
    /// `https://chat.whatsapp.com/<code>`.
    pub invite_link: String,
    pub invite_code: String,
}

impl InviteLink {
    pub fn new(group_jid: String, invite_link: String) -> Self {
        let invite_code = invite_link
            .rsplit('/')
            .next()
            .unwrap_or(&invite_link)
            .to_owned();
        Self {
            group_jid,
            invite_link,
            invite_code,
        }
    }
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct JoinGroup {
    /// An invite code or a `https://chat.whatsapp.com/…` link.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub invite: Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JoinState {
    Joined,
    /// An admin must approve the request first.
    PendingApproval,
}

#[derive(Debug, Object)]
pub struct JoinedGroup {
    pub group_jid: String,
    pub state: JoinState,
}

#[derive(Debug, Object)]
pub struct MembershipRequestView {
    pub jid: String,
    pub phone_number: Option<String>,
    pub lid: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
}

impl From<JoinRequest> for MembershipRequestView {
    fn from(r: JoinRequest) -> Self {
        Self {
            jid: r.person.jid,
            phone_number: r.person.phone_number,
            lid: r.person.lid,
            requested_at: r.requested_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct MembershipRequests {
    pub items: Vec<MembershipRequestView>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AnswerRequests {
    /// Phone numbers or user JIDs of the requesters.
    #[oai(validator(min_items = 1, max_items = 256))]
    pub participants: Vec<Text>,
}

#[derive(Debug, Object)]
pub struct RequestsAnswered {
    /// One entry per named requester, in order.
    pub results: Vec<ParticipantResult>,
}

#[derive(Debug, Object)]
pub struct LeftGroup {
    pub group_jid: String,
}
