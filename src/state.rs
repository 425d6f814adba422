//! What every request handler and scheduled job shares: the database, the
//! settings and the gateway's services. It sits apart from `app` (the
//! wiring) so that `api` and `app` do not import each other.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Settings;
use crate::instances::sessions::Sessions;
use crate::messaging::send::Messenger;
use crate::webhooks::Webhooks;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub admin_key: Arc<str>,
    pub sessions: Sessions,
    pub messenger: Messenger,
    pub jobs: crate::scheduler::Jobs,
    /// Wakes the webhook dispatcher after a commit that recorded events.
    pub webhooks: Webhooks,
    /// Seals and opens webhook secrets at rest.
    pub keyring: crate::sealing::Keyring,
}
