//! Groups at the engine seam: what a group is, what a session can be asked
//! to do with one, and what WhatsApp reports about groups the instance is in.

use chrono::{DateTime, Utc};

use super::{EngineError, Party};

/// A group the instance is in, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub jid: String,
    pub subject: String,
    pub size: u32,
    /// Whether the instance is an admin (or the super admin) of it.
    pub is_admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRole {
    Member,
    Admin,
    /// The creator: an admin no other admin can demote.
    SuperAdmin,
}

impl GroupRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::SuperAdmin => "superadmin",
        }
    }

    pub fn is_admin(self) -> bool {
        !matches!(self, Self::Member)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub person: Party,
    pub role: GroupRole,
}

/// Who may do what in a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSettings {
    /// Only admins send messages.
    pub announce: bool,
    /// Only admins edit the group's subject, description and settings.
    pub locked: bool,
    /// Disappearing messages after this many seconds; 0 is off.
    pub ephemeral_seconds: u32,
    /// Joining by invite link needs an admin's approval.
    pub approval_required: bool,
}

/// Everything WhatsApp says of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    /// Who created it, when WhatsApp says.
    pub owner: Option<Party>,
    pub created_at: Option<DateTime<Utc>>,
    pub settings: GroupSettings,
    pub participants: Vec<GroupMember>,
}

impl GroupInfo {
    /// The member whose JID, LID or number is `jid`'s.
    pub fn member(&self, person: &Party) -> Option<&GroupMember> {
        self.participants
            .iter()
            .find(|m| same_person(&m.person, person))
    }
}

/// Whether two addresses name the same person: the same JID, the same LID
/// or the same number.
pub fn same_person(a: &Party, b: &Party) -> bool {
    a.jid == b.jid
        || a.lid.is_some() && a.lid == b.lid
        || a.phone_number.is_some() && a.phone_number == b.phone_number
}

/// What to change of a group; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChange {
    pub subject: Option<String>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    pub announce: Option<bool>,
    pub locked: Option<bool>,
    pub ephemeral_seconds: Option<u32>,
    pub approval_required: Option<bool>,
}

impl GroupChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantAction {
    Add,
    Remove,
    Promote,
    Demote,
}

impl ParticipantAction {
    /// The past tense the `group.participants` event uses.
    pub fn done(self) -> &'static str {
        match self {
            Self::Add => "added",
            Self::Remove => "removed",
            Self::Promote => "promoted",
            Self::Demote => "demoted",
        }
    }
}

/// Why WhatsApp turned one participant of a request away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantFailure {
    NotOnWhatsApp,
    AlreadyParticipant,
    NotParticipant,
    /// Their privacy settings allow no adding; they must be invited.
    InviteRequired,
    /// Anything else, in WhatsApp's words.
    Refused(String),
}

impl ParticipantFailure {
    /// The stable code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotOnWhatsApp => "participant_not_on_whatsapp",
            Self::AlreadyParticipant => "already_a_participant",
            Self::NotParticipant => "not_a_participant",
            Self::InviteRequired => "invite_required",
            Self::Refused(_) => "participant_refused",
        }
    }
}

/// What came of one participant of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantOutcome {
    pub person: Party,
    pub failure: Option<ParticipantFailure>,
}

/// What came of joining by invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    Member(String),
    /// The group needs an admin's approval; the request waits.
    PendingApproval(String),
}

/// Someone asking to join a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub person: Party,
    pub requested_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    #[error("no group {0}, or the instance is not in it")]
    NotFound(String),
    #[error("the instance is not an admin of group {0}")]
    NotAdmin(String),
    #[error("the instance is not a participant of group {0}")]
    NotParticipant(String),
    #[error("the invite is not valid (revoked, expired or mistyped)")]
    InviteNotFound,
    #[error("the description changed since it was read; read the group and try again")]
    DescriptionConflict,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What a live session does with groups.
#[async_trait::async_trait]
pub trait GroupSession: Send + Sync {
    /// The groups the instance is in.
    async fn groups(&self) -> Result<Vec<GroupSummary>, GroupError>;

    /// Creates a group with the instance as its super admin; `participants`
    /// are user JIDs.
    async fn create_group(
        &self,
        subject: &str,
        participants: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantOutcome>), GroupError>;

    async fn group(&self, jid: &str) -> Result<GroupInfo, GroupError>;

    async fn change_group(&self, jid: &str, change: &GroupChange) -> Result<(), GroupError>;

    /// Adds, removes, promotes or demotes user JIDs, each with its outcome.
    async fn change_participants(
        &self,
        jid: &str,
        action: ParticipantAction,
        participants: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError>;

    /// The group's invite link; `revoke` replaces it with a new one first.
    async fn invite_link(&self, jid: &str, revoke: bool) -> Result<String, GroupError>;

    /// Joins by an invite code or link.
    async fn join(&self, invite: &str) -> Result<Joined, GroupError>;

    async fn leave(&self, jid: &str) -> Result<(), GroupError>;

    async fn join_requests(&self, jid: &str) -> Result<Vec<JoinRequest>, GroupError>;

    /// Approves (or rejects) the requests of user JIDs.
    async fn answer_join_requests(
        &self,
        jid: &str,
        approve: bool,
        people: &[String],
    ) -> Result<Vec<ParticipantOutcome>, GroupError>;
}

/// The group a report is about: its JID and, when known, its subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRef {
    pub jid: String,
    pub subject: Option<String>,
}

/// A change of group settings WhatsApp reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupUpdate {
    Subject(String),
    Description(Option<String>),
    Announce(bool),
    Locked(bool),
    EphemeralSeconds(u32),
    ApprovalRequired(bool),
    InviteRevoked,
}

/// What WhatsApp reported about a group; `by` is who did it, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// The instance was added, created the group or joined it.
    Joined {
        group: GroupRef,
        by: Option<Party>,
        /// `added`, `created`, `invite` or `approved`.
        how: &'static str,
    },
    /// The instance left or was removed.
    Left {
        group: GroupRef,
        by: Option<Party>,
        /// `left` or `removed`.
        how: &'static str,
    },
    Updated {
        group: GroupRef,
        by: Option<Party>,
        changes: Vec<GroupUpdate>,
    },
    Participants {
        group: GroupRef,
        by: Option<Party>,
        action: ParticipantAction,
        people: Vec<Party>,
    },
    /// Someone asked to join (`created`) or the request went away
    /// (`revoked`).
    MembershipRequest {
        group: GroupRef,
        people: Vec<Party>,
        state: &'static str,
    },
}

impl GroupEvent {
    /// Every person the event names, to complete (a LID's phone number).
    pub fn people_mut(&mut self) -> Vec<&mut Party> {
        match self {
            Self::Joined { by, .. } | Self::Left { by, .. } | Self::Updated { by, .. } => {
                by.iter_mut().collect()
            }
            Self::Participants { by, people, .. } => {
                by.iter_mut().chain(people.iter_mut()).collect()
            }
            Self::MembershipRequest { people, .. } => people.iter_mut().collect(),
        }
    }
}
