//! Managing an instance's WhatsApp groups: list, create, read and change
//! them, their participants, invite links and join requests; join by
//! invite and leave. Each needs the instance's live session.

use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::groups_dto::*;
use super::text;
use crate::access::Scope;
use crate::engine::EngineError;
use crate::engine::groups::{GroupChange, GroupError, Joined};
use crate::instances::store;
use crate::messaging::groups::GroupsError;
use crate::state::AppState;

impl From<GroupsError> for ApiError {
    fn from(err: GroupsError) -> Self {
        let detail = err.to_string();
        match err {
            GroupsError::NotConnected
            | GroupsError::Group(GroupError::Engine(EngineError::NotConnected)) => {
                Self::new(StatusCode::CONFLICT, "instance_not_connected", detail)
            }
            GroupsError::Unsupported => {
                Self::new(StatusCode::CONFLICT, "groups_unsupported", detail)
            }
            GroupsError::InvalidParticipant(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_participant",
                detail,
            ),
            GroupsError::Send(e) => e.into(),
            GroupsError::Group(e) => match e {
                GroupError::NotFound(_) => {
                    Self::new(StatusCode::NOT_FOUND, "group_not_found", detail)
                }
                GroupError::NotAdmin(_) => {
                    Self::new(StatusCode::FORBIDDEN, "not_a_group_admin", detail)
                }
                GroupError::NotParticipant(_) => {
                    Self::new(StatusCode::FORBIDDEN, "not_a_group_participant", detail)
                }
                GroupError::InviteNotFound => {
                    Self::new(StatusCode::NOT_FOUND, "invite_not_found", detail)
                }
                GroupError::DescriptionConflict => {
                    Self::new(StatusCode::CONFLICT, "description_conflict", detail)
                }
                GroupError::Engine(EngineError::Timeout(_)) => {
                    Self::new(StatusCode::GATEWAY_TIMEOUT, "whatsapp_timeout", detail)
                }
                GroupError::Engine(_) => {
                    Self::new(StatusCode::BAD_GATEWAY, "whatsapp_unavailable", detail)
                }
            },
        }
    }
}

#[derive(ApiResponse)]
enum CreateResponse {
    /// The group exists; each participant's outcome is listed.
    #[oai(status = 201)]
    Created(Json<CreatedGroup>),
}

pub struct GroupsApi {
    pub state: AppState,
}

impl GroupsApi {
    /// Authorises `scope` on the instance and checks that it exists.
    async fn instance(&self, auth: &Auth, id: Uuid, scope: Scope) -> Result<(), ApiError> {
        auth.instance(id, scope)?;
        store::get(&self.state.db, id).await?;
        Ok(())
    }
}

#[OpenApi(tag = "ApiTags::Groups")]
impl GroupsApi {
    /// List the instance's groups
    #[oai(
        path = "/v1/instances/:id/groups",
        method = "get",
        operation_id = "list_groups"
    )]
    async fn list(&self, auth: Auth, id: Path<Uuid>) -> Result<Json<GroupList>, ApiError> {
        self.instance(&auth, id.0, Scope::Read).await?;
        let groups = self.state.messenger.list_groups(id.0).await?;
        Ok(Json(GroupList {
            items: groups.into_iter().map(Into::into).collect(),
        }))
    }

    /// Create a group
    ///
    /// The instance becomes its creator (super admin). Participants are
    /// phone numbers or user JIDs; each one's outcome is answered (a number
    /// not on WhatsApp fails with `participant_not_on_whatsapp`). Emits
    /// `group.joined`.
    #[oai(
        path = "/v1/instances/:id/groups",
        method = "post",
        operation_id = "create_group"
    )]
    async fn create(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<CreateGroup>,
    ) -> Result<CreateResponse, ApiError> {
        self.instance(&auth, id.0, Scope::Manage).await?;
        let people = text::list(body.0.participants);
        let (group, outcomes) = self
            .state
            .messenger
            .create_group(id.0, &body.0.subject, &people)
            .await?;
        Ok(CreateResponse::Created(Json(CreatedGroup {
            group: group.into(),
            participants: outcomes.into_iter().map(Into::into).collect(),
        })))
    }

    /// Join a group by invite
    ///
    /// `invite` is a code or a `https://chat.whatsapp.com/…` link. A group
    /// that needs approval answers `pending_approval`.
    #[oai(
        path = "/v1/instances/:id/groups/join",
        method = "post",
        operation_id = "join_group"
    )]
    async fn join(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<JoinGroup>,
    ) -> Result<Json<JoinedGroup>, ApiError> {
        self.instance(&auth, id.0, Scope::Manage).await?;
        let joined = self
            .state
            .messenger
            .join_group(id.0, body.0.invite.trim())
            .await?;
        Ok(Json(match joined {
            Joined::Member(group_jid) => JoinedGroup {
                group_jid,
                state: JoinState::Joined,
            },
            Joined::PendingApproval(group_jid) => JoinedGroup {
                group_jid,
                state: JoinState::PendingApproval,
            },
        }))
    }

    /// Get a group
    ///
    /// Subject, description, owner, settings and participants with roles.
    #[oai(
        path = "/v1/instances/:id/groups/:group",
        method = "get",
        operation_id = "get_group"
    )]
    async fn get(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
    ) -> Result<Json<Group>, ApiError> {
        self.instance(&auth, id.0, Scope::Read).await?;
        let info = self.state.messenger.group(id.0, &group.0).await?;
        Ok(Json(info.into()))
    }

    /// Change a group
    ///
    /// Subject, description, announce-only, locked, the disappearing
    /// timer and approval to join; answers the group as it now is. Emits
    /// `group.updated`.
    #[oai(
        path = "/v1/instances/:id/groups/:group",
        method = "patch",
        operation_id = "update_group"
    )]
    async fn update(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
        body: Json<UpdateGroup>,
    ) -> Result<Json<Group>, ApiError> {
        self.instance(&auth, id.0, Scope::Manage).await?;
        let body = body.0;
        let change = GroupChange {
            subject: text::opt(body.subject),
            description: text::opt(body.description).map(|d| Some(d).filter(|d| !d.is_empty())),
            announce: body.announce,
            locked: body.locked,
            ephemeral_seconds: body.ephemeral_seconds,
            approval_required: body.approval_required,
        };
        let info = self
            .state
            .messenger
            .change_group(id.0, &group.0, &change)
            .await?;
        Ok(Json(info.into()))
    }

    /// Add, remove, promote or demote participants
    ///
    /// Needs the instance to be an admin. Each participant's outcome is
    /// answered. Emits `group.participants`.
    #[oai(
        path = "/v1/instances/:id/groups/:group/participants",
        method = "post",
        operation_id = "change_group_participants"
    )]
    async fn participants(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
        body: Json<ChangeParticipants>,
    ) -> Result<Json<ParticipantsChanged>, ApiError> {
        self.instance(&auth, id.0, Scope::Manage).await?;
        let action = body.0.action;
        let people = text::list(body.0.participants);
        let results = self
            .state
            .messenger
            .change_participants(id.0, &group.0, action.into(), &people)
            .await?;
        Ok(Json(ParticipantsChanged {
            action,
            results: results.into_iter().map(Into::into).collect(),
        }))
    }

    /// Get a group's invite link
    #[oai(
        path = "/v1/instances/:id/groups/:group/invite-link",
        method = "get",
        operation_id = "get_group_invite_link"
    )]
    async fn invite_link(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
    ) -> Result<Json<InviteLink>, ApiError> {
        self.instance(&auth, id.0, Scope::Read).await?;
        let link = self
            .state
            .messenger
            .invite_link(id.0, &group.0, false)
            .await?;
        Ok(Json(InviteLink::new(group.0, link)))
    }

    /// Revoke a group's invite link
    ///
    /// The old link stops working; answers the new one.
    #[oai(
        path = "/v1/instances/:id/groups/:group/invite-link/revoke",
        method = "post",
        operation_id = "revoke_group_invite_link"
    )]
    async fn revoke_invite_link(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
    ) -> Result<Json<InviteLink>, ApiError> {
        self.instance(&auth, id.0, Scope::Manage).await?;
        let link = self
            .state
            .messenger
            .invite_link(id.0, &group.0, true)
            .await?;
        Ok(Json(InviteLink::new(group.0, link)))
    }

    /// Leave a group
    ///
    /// Emits `group.left`.
    #[oai(
        path = "/v1/instances/:id/groups/:group/leave",
        method = "post",
        operation_id = "leave_group"
    )]
    async fn leave(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
    ) -> Result<Json<LeftGroup>, ApiError> {
        self.instance(&auth, id.0, Scope::Manage).await?;
        self.state.messenger.leave_group(id.0, &group.0).await?;
        Ok(Json(LeftGroup { group_jid: group.0 }))
    }

    /// List requests to join a group
    ///
    /// Needs the instance to be an admin.
    #[oai(
        path = "/v1/instances/:id/groups/:group/membership-requests",
        method = "get",
        operation_id = "list_group_membership_requests"
    )]
    async fn requests(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
    ) -> Result<Json<MembershipRequests>, ApiError> {
        self.instance(&auth, id.0, Scope::Read).await?;
        let requests = self.state.messenger.join_requests(id.0, &group.0).await?;
        Ok(Json(MembershipRequests {
            items: requests.into_iter().map(Into::into).collect(),
        }))
    }

    /// Approve requests to join a group
    #[oai(
        path = "/v1/instances/:id/groups/:group/membership-requests/approve",
        method = "post",
        operation_id = "approve_group_membership_requests"
    )]
    async fn approve(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
        body: Json<AnswerRequests>,
    ) -> Result<Json<RequestsAnswered>, ApiError> {
        self.answer(auth, id.0, &group.0, true, body.0).await
    }

    /// Reject requests to join a group
    #[oai(
        path = "/v1/instances/:id/groups/:group/membership-requests/reject",
        method = "post",
        operation_id = "reject_group_membership_requests"
    )]
    async fn reject(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        #[oai(validator(pattern = r"^[0-9]{1,24}(-[0-9]{1,24})?@g\.us$"))] group: Path<String>,
        body: Json<AnswerRequests>,
    ) -> Result<Json<RequestsAnswered>, ApiError> {
        self.answer(auth, id.0, &group.0, false, body.0).await
    }
}

impl GroupsApi {
    async fn answer(
        &self,
        auth: Auth,
        id: Uuid,
        group: &str,
        approve: bool,
        body: AnswerRequests,
    ) -> Result<Json<RequestsAnswered>, ApiError> {
        self.instance(&auth, id, Scope::Manage).await?;
        let people = text::list(body.participants);
        let results = self
            .state
            .messenger
            .answer_join_requests(id, group, approve, &people)
            .await?;
        Ok(Json(RequestsAnswered {
            results: results.into_iter().map(Into::into).collect(),
        }))
    }
}
