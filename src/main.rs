//! The `wagate` command: `serve` (default), `migrate`, `openapi`.

use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use wagate::app::{App, AppError, Signals};
use wagate::config::Settings;
use wagate::engine::Engine;
use wagate::whatsapp::WhatsAppEngine;
use wagate::{api, db, telemetry};

const USAGE: &str = "usage: wagate [serve | migrate | openapi]

  serve    run the gateway (default)
  migrate  apply database migrations and exit
  openapi  print the OpenAPI document and exit

Settings come from config/default.toml, WAGATE_CONFIG and WAGATE_* variables.";

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    match command.as_str() {
        "openapi" => {
            println!("{}", api::spec_json());
            ExitCode::SUCCESS
        }
        "serve" | "migrate" => run(&command),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(command: &str) -> ExitCode {
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wagate: {e}");
            return ExitCode::from(78);
        }
    };
    telemetry::init(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wagate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if command == "migrate" {
            let conn = db::connect(&settings).await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        let mut signals = Signals::install().map_err(AppError::Serve)?;
        let engine = real_engine(&settings).await?;
        App::build(settings, engine)
            .await?
            .run(async move {
                signals.next().await;
                // The first signal drains gracefully; a second one means now.
                tokio::spawn(async move {
                    signals.next().await;
                    eprintln!("wagate: second signal, exiting without draining");
                    std::process::exit(130);
                });
            })
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "wagate stopped");
            eprintln!("wagate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn real_engine(settings: &Settings) -> Result<Arc<dyn Engine>, AppError> {
    let ws_url = Some(settings.whatsapp.ws_url.clone()).filter(|u| !u.is_empty());
    // The engine's own pool: key-store traffic never waits behind API requests.
    let db = db::connect(settings).await?;
    let backends = Arc::new(wagate::whatsapp::store::SeaBackends::new(db));
    let engine = WhatsAppEngine::new(
        backends,
        ws_url,
        Duration::from_secs(settings.whatsapp.answer_timeout_secs),
    )?;
    Ok(Arc::new(engine))
}
