//! Sending reactions, locations, contact cards and polls by the sender's
//! number, with the guarantees of a text send: number checks,
//! `Idempotency-Key`, pacing, tracking and events. The routes live under
//! `/v1`; `messages::Unversioned` mounts them at the seed's paths too.

use poem::http::StatusCode;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::auth::Auth;
use super::error::ApiError;
use super::messages::send::extras;
use super::messages::send_dto::SendResult;
use super::text::{self, Text};
use crate::access::Scope;
use crate::engine::OutgoingMessage;
use crate::messaging::compose::{self, ComposeError, ContactInput};
use crate::messaging::idempotency::{Idempotency, request_hash};
use crate::messaging::send::Content;
use crate::state::AppState;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendLocation {
    /// Recipient's number.
    #[oai(validator(max_length = 32))]
    pub to: Text,
    #[oai(validator(minimum(value = "-90"), maximum(value = "90")))]
    pub latitude: f64,
    #[oai(validator(minimum(value = "-180"), maximum(value = "180")))]
    pub longitude: f64,
    /// The place's name.
    #[oai(validator(min_length = 1, max_length = 256))]
    pub name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 512))]
    pub address: Option<Text>,
    /// WhatsApp id of a message this instance sent or received, to quote.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub reply_to: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendReaction {
    /// The chat: the number of the contact whose message (or ours to them)
    /// is reacted to.
    #[oai(validator(max_length = 32))]
    pub to: Text,
    /// WhatsApp's id of the message reacted to: one this instance sent to
    /// `to`, or one `to` sent.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub message_id: Text,
    /// One emoji; empty removes this instance's reaction.
    #[oai(validator(max_length = 32))]
    pub emoji: Text,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendPoll {
    /// Recipient's number.
    #[oai(validator(max_length = 32))]
    pub to: Text,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub question: Text,
    /// 2 to 12 distinct options, each 1 to 100 characters.
    #[oai(validator(min_items = 2, max_items = 12))]
    pub options: Vec<PollOption>,
    /// How many options a voter may pick; 1 (the default) is single choice.
    #[oai(validator(minimum(value = "1"), maximum(value = "12")))]
    pub selectable_count: Option<u32>,
    /// WhatsApp id of a message this instance sent or received, to quote.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub reply_to: Option<Text>,
}

/// A poll option's text.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PollOption {
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Text,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SendContacts {
    /// Recipient's number.
    #[oai(validator(max_length = 32))]
    pub to: Text,
    /// One card, or several sent as one message.
    #[oai(validator(min_items = 1, max_items = 20))]
    pub contacts: Vec<ContactBody>,
    /// WhatsApp id of a message this instance sent or received, to quote.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub reply_to: Option<Text>,
}

/// A contact card: either `vcard` (raw vCard 3.0 text, `display_name`
/// then defaults to its `FN`), or `display_name` with `phone_numbers`.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct ContactBody {
    #[oai(validator(min_length = 1, max_length = 256))]
    pub display_name: Option<Text>,
    /// Numbers of the contact, international or national (default region).
    #[oai(validator(min_items = 1, max_items = 10))]
    pub phone_numbers: Option<Vec<Text>>,
    #[oai(validator(min_length = 1, max_length = 16384))]
    pub vcard: Option<Text>,
}

impl From<ComposeError> for ApiError {
    fn from(err: ComposeError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.code(),
            err.to_string(),
        )
    }
}

pub struct ConversationsApi {
    pub state: AppState,
}

impl ConversationsApi {
    /// Sends a checked `message`; a repeated key must repeat the request
    /// exactly (the message's parts are its digest).
    async fn send(
        &self,
        route: &str,
        sender: String,
        to: &str,
        (message, reply_to): (OutgoingMessage, Option<Text>),
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let (extras, digest) = extras(text::opt(reply_to), Vec::new());
        let described = format!("{message:?}");
        let idem = key.map(|key| Idempotency {
            key,
            request_hash: request_hash(&[
                route.as_bytes(),
                sender.as_bytes(),
                to.as_bytes(),
                described.as_bytes(),
                digest.as_bytes(),
            ]),
        });
        let sent = self
            .state
            .messenger
            .send(
                &sender,
                to,
                Content::Message(message),
                extras,
                idem,
                visible.as_deref(),
            )
            .await?;
        Ok(Json(sent.into()))
    }

    async fn location(
        &self,
        sender: String,
        body: SendLocation,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let message = compose::location(
            body.latitude,
            body.longitude,
            text::opt(body.name),
            text::opt(body.address),
        )?;
        self.send(
            "location",
            sender,
            &body.to,
            (message, body.reply_to),
            key,
            visible,
        )
        .await
    }

    async fn reaction(
        &self,
        sender: String,
        body: SendReaction,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let message = compose::reaction(body.message_id.0, body.emoji.0)?;
        self.send("reaction", sender, &body.to, (message, None), key, visible)
            .await
    }

    async fn poll(
        &self,
        sender: String,
        body: SendPoll,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let options = body.options.into_iter().map(|o| o.name.0).collect();
        let message = compose::poll(body.question.0, options, body.selectable_count)?;
        self.send(
            "poll",
            sender,
            &body.to,
            (message, body.reply_to),
            key,
            visible,
        )
        .await
    }

    async fn contacts(
        &self,
        sender: String,
        body: SendContacts,
        key: Option<String>,
        visible: Option<Vec<Uuid>>,
    ) -> Result<Json<SendResult>, ApiError> {
        let messenger = &self.state.messenger;
        let mut inputs = Vec::with_capacity(body.contacts.len());
        for contact in body.contacts {
            let name = text::opt(contact.display_name);
            inputs.push(match (contact.vcard, contact.phone_numbers, name) {
                (Some(vcard), None, display_name) => ContactInput::Vcard {
                    display_name,
                    vcard: vcard.0,
                },
                (None, Some(numbers), Some(display_name)) => ContactInput::Numbers {
                    display_name,
                    phone_numbers: numbers
                        .iter()
                        .map(|n| messenger.normalize("phone_numbers", n))
                        .collect::<Result<_, _>>()?,
                },
                _ => return Err(ComposeError::InvalidContact.into()),
            });
        }
        let message = compose::contacts(inputs)?;
        self.send(
            "contact",
            sender,
            &body.to,
            (message, body.reply_to),
            key,
            visible,
        )
        .await
    }
}

#[OpenApi(tag = "ApiTags::Messages")]
impl ConversationsApi {
    /// Send a location
    ///
    /// A pin at `latitude`/`longitude`, with an optional name and address.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/location",
        method = "post",
        operation_id = "send_location_v1"
    )]
    async fn send_location_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendLocation>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.location(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// React to a message
    ///
    /// `emoji` on a message this instance sent to `to` or received from it;
    /// an empty `emoji` removes the reaction.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/reaction",
        method = "post",
        operation_id = "send_reaction_v1"
    )]
    async fn send_reaction_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendReaction>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.reaction(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send a poll
    ///
    /// A question with 2 to 12 distinct options; `selectable_count` says
    /// how many a voter may pick.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/poll",
        method = "post",
        operation_id = "send_poll_v1"
    )]
    async fn send_poll_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendPoll>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.poll(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }

    /// Send contact cards
    ///
    /// One or more contacts, each a raw vCard or a name with numbers.
    #[oai(
        path = "/v1/send/by-number/:phoneNumber/contact",
        method = "post",
        operation_id = "send_contact_v1"
    )]
    async fn send_contact_v1(
        &self,
        auth: Auth,
        #[oai(name = "phoneNumber")] phone_number: Path<String>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))] key: Header<
            Option<String>,
        >,
        body: Json<SendContacts>,
    ) -> Result<Json<SendResult>, ApiError> {
        self.contacts(phone_number.0, body.0, key.0, auth.visible(Scope::Send))
            .await
    }
}
