//! The gateway with the scripted engine instead of WhatsApp, for tests that
//! need the real binary (restarts, signals) and for trying the API without a
//! phone: every instance it starts comes online after
//! `SCRIPTED_CONNECT_DELAY_MS` (default 0). With `SCRIPTED_PHONE_BASE` set it
//! is a playground: each new instance gets a number of its own (the base,
//! then counting up) and every send is delivered, then read,
//! `SCRIPTED_RECEIPT_DELAY_MS` apart (default 1000).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use wagate::engine::Engine;
use wagate::engine::scripted::ScriptedEngine;

fn main() -> ExitCode {
    wagate::cli::main_with(|_settings| async {
        let engine = ScriptedEngine::new();
        engine.resume_everyone();
        let millis = |name: &str| {
            let ms = std::env::var(name).ok().and_then(|v| v.parse().ok());
            Duration::from_millis(ms.unwrap_or(0))
        };
        engine.connect_delay(millis("SCRIPTED_CONNECT_DELAY_MS"));
        engine.send_delay(millis("SCRIPTED_SEND_DELAY_MS"));
        let base = std::env::var("SCRIPTED_PHONE_BASE").ok();
        if let Some(base) = base.and_then(|v| v.parse().ok()) {
            let receipts = std::env::var("SCRIPTED_RECEIPT_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            engine.playground(base, Duration::from_millis(receipts));
        }
        Ok(Arc::new(engine) as Arc<dyn Engine>)
    })
}
