//! The HTTP surface: poem-openapi handlers (one file per tag), the error
//! type, authentication, the spec and the docs UI.

pub mod auth;
pub mod error;
pub mod events;
pub mod global_webhooks;
pub mod instances;
pub mod system;
pub mod webhooks;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::app::AppState;

#[derive(Tags)]
pub enum ApiTags {
    /// WhatsApp numbers managed by this gateway.
    Instances,
    /// Signed webhooks: registrations, secrets, deliveries and attempts.
    Webhooks,
    /// Webhooks that receive every instance's events.
    GlobalWebhooks,
    /// An instance's events, read by cursor.
    Events,
    /// Probes.
    System,
}

type Apis = (
    system::SystemApi,
    instances::InstancesApi,
    webhooks::WebhooksApi,
    global_webhooks::GlobalWebhooksApi,
    events::EventsApi,
);

fn service(state: AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            system::SystemApi {
                state: state.clone(),
            },
            instances::InstancesApi {
                state: state.clone(),
            },
            webhooks::WebhooksApi {
                state: state.clone(),
            },
            global_webhooks::GlobalWebhooksApi {
                state: state.clone(),
            },
            events::EventsApi { state },
        ),
        "wagate",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Self-hosted WhatsApp Web multi-device gateway.")
}

/// The OpenAPI document as JSON. It does not depend on settings or data, so
/// it is built without a database.
pub fn spec_json() -> String {
    let state = AppState {
        db: Default::default(),
        settings: Default::default(),
        admin_key: "".into(),
        webhooks: Default::default(),
    };
    service(state).spec()
}

/// Every route of the server, with request logging and problem+json errors.
pub fn routes(state: AppState) -> impl Endpoint {
    let keys = auth::Keys::new(&state.admin_key);
    let api = service(state);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .data(keys)
        .around(error::problem_middleware)
        .around(crate::telemetry::request_span)
}
