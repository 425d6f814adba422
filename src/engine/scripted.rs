//! A scripted engine for tests: it records what the gateway asked of it and
//! emits whatever events the test tells it to, through the same sink a real
//! session uses.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use super::{
    Engine, EngineError, EngineEvent, EventSink, MediaKind, NumberInfo, OutgoingMedia,
    OutgoingMessage, Session,
};

/// What the gateway asked of the engine, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Start(Uuid),
    PairCode(Uuid, String),
    Logout(Uuid),
    Disconnect(Uuid),
    Wipe(Uuid),
    Typing {
        instance: Uuid,
        to: String,
    },
    SendText {
        instance: Uuid,
        to: String,
        text: String,
        reply_to: Option<String>,
    },
    SendMedia {
        instance: Uuid,
        to: String,
        kind: MediaKind,
        mime_type: String,
        size: usize,
        file_name: Option<String>,
        caption: Option<String>,
        voice: bool,
    },
    SendMessage {
        instance: Uuid,
        to: String,
        message: OutgoingMessage,
    },
    CheckNumbers(Uuid, Vec<String>),
}

#[derive(Default)]
struct State {
    sinks: HashMap<Uuid, EventSink>,
    /// Instances whose (pretend) keys are stored: they resume without a QR.
    stored: HashSet<Uuid>,
    calls: Vec<Call>,
    refuse_start: bool,
    silent: bool,
    /// How long a resuming session takes to come online.
    connect_delay: Duration,
    resume_everyone: bool,
    send_delay: Duration,
    connecting: usize,
    max_connecting: usize,
    /// WhatsApp's directory: number -> the JID it is registered under.
    directory: HashMap<String, String>,
    sent: u64,
    fail_sends: bool,
}

#[derive(Clone, Default)]
pub struct ScriptedEngine {
    state: Arc<Mutex<State>>,
}

impl ScriptedEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers `event` as the instance's live session would. False when the
    /// instance has no live session.
    pub async fn emit(&self, instance_id: Uuid, event: EngineEvent) -> bool {
        let sink = {
            let mut state = self.lock();
            match &event {
                EngineEvent::Paired { .. } | EngineEvent::Connected { .. } => {
                    state.stored.insert(instance_id);
                }
                EngineEvent::LoggedOut { .. } => {
                    state.stored.remove(&instance_id);
                }
                _ => {}
            }
            state.sinks.get(&instance_id).cloned()
        };
        match sink {
            Some(sink) => sink.send((instance_id, event)).await.is_ok(),
            None => false,
        }
    }

    /// Pretends `instance_id` has stored keys, as after an earlier pairing.
    pub fn store_session(&self, instance_id: Uuid) {
        self.lock().stored.insert(instance_id);
    }

    pub fn has_live_session(&self, instance_id: Uuid) -> bool {
        self.lock().sinks.contains_key(&instance_id)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes every later `start` fail, as when WhatsApp cannot be reached.
    pub fn refuse_start(&self, refuse: bool) {
        self.lock().refuse_start = refuse;
    }

    /// Registers `phone_number` on (pretend) WhatsApp under its own JID.
    pub fn register_number(&self, phone_number: &str) {
        self.register_number_as(phone_number, &format!("{phone_number}@s.whatsapp.net"));
    }

    /// Registers `phone_number` under another JID, as WhatsApp does for
    /// Brazilian numbers without the ninth digit.
    pub fn register_number_as(&self, phone_number: &str, jid: &str) {
        self.lock()
            .directory
            .insert(phone_number.to_owned(), jid.to_owned());
    }

    /// Makes stored sessions take `delay` to come online, and counts how
    /// many are connecting at once.
    pub fn connect_delay(&self, delay: Duration) {
        self.lock().connect_delay = delay;
    }

    /// Treats every instance it starts as paired and every number as on
    /// WhatsApp, as a process restarted on a database of paired instances
    /// needs.
    pub fn resume_everyone(&self) {
        self.lock().resume_everyone = true;
    }

    /// Makes every send take `delay`, like a slow network.
    pub fn send_delay(&self, delay: Duration) {
        self.lock().send_delay = delay;
    }

    /// The most sessions that were connecting at the same time.
    pub fn max_connecting(&self) -> usize {
        self.lock().max_connecting
    }

    /// Makes every later send fail, as WhatsApp refusing it.
    pub fn fail_sends(&self, fail: bool) {
        self.lock().fail_sends = fail;
    }

    /// Makes later sessions start without showing anything, like a server
    /// that never answers.
    pub fn silent(&self, silent: bool) {
        self.lock().silent = silent;
    }

    /// The QR code the double shows for an instance's `attempt`.
    pub fn qr_code(instance_id: Uuid, attempt: u32) -> String {
        format!("scripted-ref-{attempt},{instance_id}")
    }
}

#[async_trait::async_trait]
impl Engine for ScriptedEngine {
    async fn start(
        &self,
        instance_id: Uuid,
        sink: EventSink,
    ) -> Result<Arc<dyn Session>, EngineError> {
        let (first, delay) = {
            let mut state = self.lock();
            state.calls.push(Call::Start(instance_id));
            if state.refuse_start {
                return Err(EngineError::Refused("scripted refusal".into()));
            }
            state.sinks.insert(instance_id, sink.clone());
            if state.silent {
                (None, Duration::ZERO)
            } else if state.resume_everyone || state.stored.contains(&instance_id) {
                state.connecting += 1;
                state.max_connecting = state.max_connecting.max(state.connecting);
                tracing::info!(
                    %instance_id,
                    connecting = state.connecting,
                    "scripted session connecting"
                );
                let connected = EngineEvent::Connected {
                    jid: None,
                    phone_number: None,
                };
                (Some(connected), state.connect_delay)
            } else {
                let qr = EngineEvent::Qr {
                    code: Self::qr_code(instance_id, 1),
                    valid_for: Duration::from_secs(60),
                    attempt: 1,
                };
                (Some(qr), Duration::ZERO)
            }
        };
        // Like a real client, the first event arrives after start returns.
        if let Some(first) = first {
            let engine = self.clone();
            tokio::spawn(async move {
                // Stands in for the handshake's time on the wire.
                tokio::time::sleep(delay).await;
                if matches!(first, EngineEvent::Connected { .. }) {
                    let mut state = engine.lock();
                    state.connecting = state.connecting.saturating_sub(1);
                }
                let _ = sink.send((instance_id, first)).await;
            });
        }
        Ok(Arc::new(ScriptedSession {
            engine: self.clone(),
            instance_id,
        }))
    }

    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError> {
        let mut state = self.lock();
        state.calls.push(Call::Wipe(instance_id));
        state.stored.remove(&instance_id);
        Ok(())
    }
}

struct ScriptedSession {
    engine: ScriptedEngine,
    instance_id: Uuid,
}

#[async_trait::async_trait]
impl Session for ScriptedSession {
    async fn pair_code(&self, phone_number: &str) -> Result<String, EngineError> {
        self.engine
            .lock()
            .calls
            .push(Call::PairCode(self.instance_id, phone_number.to_owned()));
        Ok("SCRP7K2Q".to_owned())
    }

    async fn logout(&self) {
        let sink = {
            let mut state = self.engine.lock();
            state.calls.push(Call::Logout(self.instance_id));
            state.stored.remove(&self.instance_id);
            state.sinks.remove(&self.instance_id)
        };
        // The real client announces its own logout too.
        if let Some(sink) = sink {
            let _ = sink
                .send((
                    self.instance_id,
                    EngineEvent::LoggedOut {
                        reason: "logged out".into(),
                    },
                ))
                .await;
        }
    }

    async fn disconnect(&self) {
        let mut state = self.engine.lock();
        state.calls.push(Call::Disconnect(self.instance_id));
        state.sinks.remove(&self.instance_id);
    }

    async fn send_text(
        &self,
        to_jid: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<String, EngineError> {
        let (sent, delay) = {
            let mut state = self.engine.lock();
            state.calls.push(Call::SendText {
                instance: self.instance_id,
                to: to_jid.to_owned(),
                text: text.to_owned(),
                reply_to: reply_to.map(str::to_owned),
            });
            (next_message_id(&mut state), state.send_delay)
        };
        tracing::info!(to = to_jid, "scripted send started");
        tokio::time::sleep(delay).await;
        sent
    }

    async fn typing(&self, to_jid: &str) -> Result<(), EngineError> {
        self.engine.lock().calls.push(Call::Typing {
            instance: self.instance_id,
            to: to_jid.to_owned(),
        });
        Ok(())
    }

    async fn send_media(&self, to_jid: &str, media: OutgoingMedia) -> Result<String, EngineError> {
        let mut state = self.engine.lock();
        state.calls.push(Call::SendMedia {
            instance: self.instance_id,
            to: to_jid.to_owned(),
            kind: media.kind,
            mime_type: media.mime_type,
            size: media.bytes.len(),
            file_name: media.file_name,
            caption: media.caption,
            voice: media.voice,
        });
        next_message_id(&mut state)
    }

    async fn send_message(
        &self,
        to_jid: &str,
        message: OutgoingMessage,
    ) -> Result<String, EngineError> {
        let mut state = self.engine.lock();
        state.calls.push(Call::SendMessage {
            instance: self.instance_id,
            to: to_jid.to_owned(),
            message,
        });
        next_message_id(&mut state)
    }

    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberInfo>, EngineError> {
        let mut state = self.engine.lock();
        state
            .calls
            .push(Call::CheckNumbers(self.instance_id, numbers.to_vec()));
        Ok(numbers
            .iter()
            .map(|n| {
                let jid = state
                    .directory
                    .get(n)
                    .cloned()
                    .or_else(|| state.resume_everyone.then(|| format!("{n}@s.whatsapp.net")));
                NumberInfo {
                    phone_number: n.clone(),
                    registered: jid.is_some(),
                    lid: jid
                        .as_ref()
                        .map(|_| format!("{}0@lid", &n[..n.len().min(6)])),
                    jid,
                }
            })
            .collect())
    }
}

fn next_message_id(state: &mut State) -> Result<String, EngineError> {
    if state.fail_sends {
        return Err(EngineError::Refused("scripted send failure".into()));
    }
    state.sent += 1;
    Ok(format!("3EB0SCRIPTED{:08X}", state.sent))
}
