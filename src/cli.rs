//! The command line: `serve` (default), `migrate`, `openapi`, for any
//! engine (the `wagate` binary passes the real one).

use std::process::ExitCode;

use std::sync::Arc;

use std::future::Future;

use crate::app::{App, AppError, Signals};
use crate::config::Settings;
use crate::engine::Engine;
use crate::{api, db, telemetry};

const USAGE: &str = "usage: wagate [serve | migrate | openapi | reencrypt]

  serve      run the gateway (default)
  migrate    apply database migrations and exit
  openapi    print the OpenAPI document and exit
  reencrypt  re-encrypt every stored secret with encryption_key and exit

Settings come from config/default.toml, WAGATE_CONFIG and WAGATE_* variables.";

/// Runs the command named by the process arguments; `make_engine` builds the
/// WhatsApp engine once settings are loaded.
pub fn main_with<F, Fut>(make_engine: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = Result<Arc<dyn Engine>, AppError>>,
{
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    match command.as_str() {
        "openapi" => {
            println!("{}", api::spec_json());
            ExitCode::SUCCESS
        }
        "serve" | "migrate" | "reencrypt" => run(&command, make_engine),
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

fn run<F, Fut>(command: &str, make_engine: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = Result<Arc<dyn Engine>, AppError>>,
{
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
        if command == "reencrypt" {
            return crate::sealing::reencrypt::command(&settings).await;
        }
        let mut signals = Signals::install().map_err(AppError::Serve)?;
        let engine = make_engine(settings.clone()).await?;
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
