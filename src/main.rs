//! The `wagate` command: `serve` (default), `migrate`, `openapi`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use wagate::app::AppError;
use wagate::config::Settings;
use wagate::engine::Engine;
use wagate::whatsapp::WhatsAppEngine;

fn main() -> ExitCode {
    wagate::cli::main_with(real_engine)
}

async fn real_engine(settings: Settings) -> Result<Arc<dyn Engine>, AppError> {
    let ws_url = Some(settings.whatsapp.ws_url.clone()).filter(|u| !u.is_empty());
    // The engine's own pool: key-store traffic never waits behind API requests.
    let db = wagate::db::connect(&settings).await?;
    let keyring = wagate::sealing::Keyring::from_settings(&settings)?;
    let backends = Arc::new(wagate::whatsapp::store::SeaBackends::new(db, keyring));
    let engine = WhatsAppEngine::new(
        backends,
        ws_url,
        Duration::from_secs(settings.whatsapp.answer_timeout_secs),
    )?;
    Ok(Arc::new(engine))
}
