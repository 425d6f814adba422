//! The `wagate` command: `serve` (default), `migrate`, `openapi`.

use std::process::ExitCode;

use wagate::app::{App, shutdown_signal};
use wagate::config::Settings;
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
        App::build(settings).await?.run(shutdown_signal()).await
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
