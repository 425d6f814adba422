//! The gateway with the scripted engine instead of WhatsApp, for tests that
//! need the real binary (restarts, signals, the console's browser tests)
//! and for trying the API without a phone: every instance it starts comes
//! online after `SCRIPTED_CONNECT_DELAY_MS` (default 0). With
//! `SCRIPTED_PHONE_BASE` set it is a playground: each new instance gets a
//! number of its own (the base, then counting up) and every send is
//! delivered, then read, `SCRIPTED_RECEIPT_DELAY_MS` apart (default 1000).
//! With `SCRIPTED_PAIR_AFTER_MS` set, a new instance shows a QR code
//! instead, a second one after that many milliseconds, and after as many
//! again a phone "scans" it: the instance pairs and comes online. With
//! `SCRIPTED_ANNOUNCE_DISCONNECTS` set, a disconnect is announced with an
//! event, as the real client's is.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uuid::Uuid;
use wagate::engine::scripted::ScriptedEngine;
use wagate::engine::{Engine, EngineError, EngineEvent, EventSink, Session};

fn main() -> ExitCode {
    wagate::cli::main_with(|_settings| async {
        let engine = ScriptedEngine::new();
        let millis = |name: &str| {
            let ms = std::env::var(name).ok().and_then(|v| v.parse().ok());
            ms.map(Duration::from_millis)
        };
        engine.connect_delay(millis("SCRIPTED_CONNECT_DELAY_MS").unwrap_or_default());
        engine.send_delay(millis("SCRIPTED_SEND_DELAY_MS").unwrap_or_default());
        engine.announce_disconnects(std::env::var_os("SCRIPTED_ANNOUNCE_DISCONNECTS").is_some());
        let base = std::env::var("SCRIPTED_PHONE_BASE").ok();
        if let Some(base) = base.and_then(|v| v.parse().ok()) {
            let receipts = millis("SCRIPTED_RECEIPT_DELAY_MS").unwrap_or(Duration::from_secs(1));
            engine.playground(base, receipts);
        }
        if let Some(after) = millis("SCRIPTED_PAIR_AFTER_MS") {
            return Ok(Arc::new(Pairing {
                engine,
                after,
                phones: AtomicU64::new(0),
            }) as Arc<dyn Engine>);
        }
        engine.resume_everyone();
        Ok(Arc::new(engine) as Arc<dyn Engine>)
    })
}

/// A phone that scans the second QR code it is shown.
struct Pairing {
    engine: ScriptedEngine,
    after: Duration,
    phones: AtomicU64,
}

#[async_trait::async_trait]
impl Engine for Pairing {
    async fn start(
        &self,
        instance_id: Uuid,
        sink: EventSink,
    ) -> Result<Arc<dyn Session>, EngineError> {
        let session = self.engine.start(instance_id, sink.clone()).await?;
        let (after, n) = (self.after, self.phones.fetch_add(1, Ordering::Relaxed) + 1);
        tokio::spawn(async move {
            let phone = format!("62812{n:07}");
            let events = [
                EngineEvent::Qr {
                    code: ScriptedEngine::qr_code(instance_id, 2),
                    valid_for: Duration::from_secs(20),
                    attempt: 2,
                },
                EngineEvent::Paired {
                    jid: format!("{phone}:1@s.whatsapp.net"),
                    lid: None,
                    phone_number: Some(phone.clone()),
                },
                EngineEvent::Connected {
                    jid: Some(format!("{phone}:1@s.whatsapp.net")),
                    phone_number: Some(phone),
                },
            ];
            for (i, event) in events.into_iter().enumerate() {
                if i < 2 {
                    tokio::time::sleep(after).await;
                }
                if sink.send((instance_id, event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(session)
    }

    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError> {
        self.engine.wipe(instance_id).await
    }
}
