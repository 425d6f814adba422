//! The HTTP surface: poem-openapi handlers (one file per tag), the error
//! type, authentication, the spec and the docs UI.

pub mod admin;
mod admin_nodes;
pub mod auth;
pub mod body_limit;
pub mod chats;
pub mod console;
pub mod contacts;
pub mod conversations;
pub mod error;
pub mod events;
mod forward;
pub mod global_webhooks;
pub mod groups;
pub mod groups_dto;
pub mod instances;
pub mod keys;
pub mod media;
pub mod merged;
pub mod messages;
pub mod metrics;
pub mod pairing;
pub mod qr_image;
pub mod rate_limit;
pub mod spec;
pub mod stream;
pub mod system;
pub mod text;
pub mod webhooks;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

#[derive(Tags)]
pub enum ApiTags {
    /// WhatsApp numbers managed by this gateway.
    Instances,
    /// Pairing a phone by QR code or linking code, and logging out.
    Pairing,
    /// Sending by the sender's number, number checks, the message log.
    Messages,
    /// Signed webhooks: registrations, secrets, deliveries and attempts.
    Webhooks,
    /// An instance's WhatsApp groups: members, settings, invites.
    Groups,
    /// Webhooks that receive every instance's events.
    GlobalWebhooks,
    /// An instance's events, read by cursor.
    Events,
    /// API keys scoped to instances (admin only).
    Keys,
    /// Operations: scheduled jobs.
    Admin,
    /// Probes.
    System,
}

type Apis = merged::Merged<(
    system::SystemApi,
    instances::InstancesApi,
    pairing::PairingApi,
    messages::Unversioned<messages::SendApi>,
    messages::SendApi,
    (
        messages::MessagesApi,
        media::MediaApi,
        contacts::ContactsApi,
    ),
    messages::Unversioned<conversations::ConversationsApi>,
    conversations::ConversationsApi,
    (chats::ChatsApi, groups::GroupsApi),
    webhooks::WebhooksApi,
    global_webhooks::GlobalWebhooksApi,
    events::EventsApi,
    keys::KeysApi,
    admin::AdminApi,
    metrics::MetricsApi,
    stream::StreamApi,
)>;

fn service(state: AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        merged::Merged((
            system::SystemApi {
                state: state.clone(),
            },
            instances::InstancesApi {
                state: state.clone(),
            },
            pairing::PairingApi {
                state: state.clone(),
            },
            messages::Unversioned(messages::SendApi {
                state: state.clone(),
            }),
            messages::SendApi {
                state: state.clone(),
            },
            (
                messages::MessagesApi {
                    state: state.clone(),
                },
                media::MediaApi {
                    state: state.clone(),
                },
                contacts::ContactsApi {
                    state: state.clone(),
                },
            ),
            messages::Unversioned(conversations::ConversationsApi {
                state: state.clone(),
            }),
            conversations::ConversationsApi {
                state: state.clone(),
            },
            (
                chats::ChatsApi {
                    state: state.clone(),
                },
                groups::GroupsApi {
                    state: state.clone(),
                },
            ),
            webhooks::WebhooksApi {
                state: state.clone(),
            },
            global_webhooks::GlobalWebhooksApi {
                state: state.clone(),
            },
            events::EventsApi {
                state: state.clone(),
            },
            keys::KeysApi {
                state: state.clone(),
            },
            admin::AdminApi {
                state: state.clone(),
            },
            metrics::MetricsApi {
                state: state.clone(),
            },
            stream::StreamApi { state },
        )),
        "wagate",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Self-hosted WhatsApp Web multi-device gateway.")
}

/// The page size a list request asked for, or the default; more than the
/// configured maximum is reduced to it (the spec cannot know the setting,
/// so a larger value is not an error).
pub fn page_limit(api: &crate::config::ApiSettings, requested: Option<u64>) -> u64 {
    requested
        .unwrap_or(api.default_page_size)
        .min(api.max_page_size)
}

/// The OpenAPI document as JSON. It does not depend on settings or data, so
/// it is built without a database.
pub fn spec_json() -> String {
    let (sessions, _) = crate::instances::sessions::Sessions::new(
        Default::default(),
        std::sync::Arc::new(crate::engine::scripted::ScriptedEngine::new()),
        std::time::Duration::from_secs(1),
        Default::default(),
        Default::default(),
    );
    let settings: crate::config::Settings = Default::default();
    let messenger =
        crate::messaging::send::Messenger::new(Default::default(), sessions.clone(), &settings)
            .unwrap_or_else(|e| panic!("the default outbound client cannot be built: {e}"));
    let state = AppState {
        db: Default::default(),
        settings: std::sync::Arc::new(settings),
        admin_key: "".into(),
        sessions,
        messenger,
        webhooks: Default::default(),
        jobs: Default::default(),
        keyring: Default::default(),
    };
    spec::finish(&service(state).spec())
}

/// Every route of the server, with request logging and problem+json errors.
pub fn routes(state: AppState) -> Result<impl Endpoint, reqwest::Error> {
    let keys = auth::Keys::new(&state.admin_key, state.db.clone());
    let forwarder = forward::Forwarder::new(state.clone())?;
    let media_limit = body_limit::MediaLimit(state.messenger.max_media_bytes());
    let limiter = rate_limit::RateLimiter::new(
        state.settings.api.rate_limit_per_sec,
        state.settings.api.rate_limit_burst,
    );
    let api = service(state);
    let document = spec::finish(&api.spec());
    let methods = spec::Methods::from_spec(&document);
    let docs = api.swagger_ui();
    Ok(Route::new()
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(document.clone())
            }),
        )
        .nest("/docs", docs)
        .nest("/console", console::routes())
        .nest("/", api.around(forward::forward).data(forwarder))
        .data(keys)
        .around(body_limit::limit_body)
        .data(media_limit)
        .around(rate_limit::limit_rate)
        .data(limiter)
        .around(error::problem_middleware)
        .around(metrics::track)
        .data(methods)
        .around(crate::telemetry::request_span))
}
