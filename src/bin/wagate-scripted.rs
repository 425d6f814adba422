//! The gateway with the scripted engine instead of WhatsApp, for tests that
//! need the real binary (restarts, signals): every instance it starts comes
//! online after `SCRIPTED_CONNECT_DELAY_MS` (default 0).

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
        Ok(Arc::new(engine) as Arc<dyn Engine>)
    })
}
