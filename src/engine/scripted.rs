//! A scripted engine for tests: it records what the gateway asked of it and
//! emits whatever events the test tells it to, through the same sink a real
//! session uses.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

mod groups;
mod media;
pub use media::{media_bytes, received_media};

use super::{
    ChatPresence, Content, Context, Engine, EngineError, EngineEvent, EventSink, Inbound,
    IncomingCall, MediaKind, NumberInfo, OutgoingMedia, OutgoingMessage, Party, ReceiptKind,
    Session,
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
        context: Context,
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
        context: Context,
    },
    SendMessage {
        instance: Uuid,
        to: String,
        message: OutgoingMessage,
        context: Context,
    },
    RejectCall {
        instance: Uuid,
        call_id: String,
        from: String,
    },
    EditText {
        instance: Uuid,
        to: String,
        message_id: String,
        text: String,
    },
    Revoke {
        instance: Uuid,
        to: String,
        message_id: String,
    },
    MarkRead {
        instance: Uuid,
        chat: String,
        message_ids: Vec<String>,
    },
    ChatPresence {
        instance: Uuid,
        chat: String,
        state: ChatPresence,
    },
    SetPresence {
        instance: Uuid,
        available: bool,
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
    /// Whether a disconnect is announced with a `Disconnected` event.
    announce_disconnects: bool,
    resume_everyone: bool,
    send_delay: Duration,
    connecting: usize,
    max_connecting: usize,
    /// WhatsApp's directory: number -> the JID it is registered under.
    directory: HashMap<String, String>,
    sent: u64,
    fail_sends: bool,
    /// The playground: numbers handed to instances, and receipts after sends.
    playground: Option<Playground>,
    download_delay: Duration,
    downloads: usize,
    /// The pretend WhatsApp's groups.
    groups: groups::Groups,
    /// Who each instance is on WhatsApp, once paired or connected.
    own: HashMap<Uuid, Party>,
}

impl State {
    /// Every instance whose person is known, with that person.
    fn owners(&self) -> Vec<(Uuid, Party)> {
        self.own.iter().map(|(id, p)| (*id, p.clone())).collect()
    }

    fn remember_own(&mut self, instance_id: Uuid, event: &EngineEvent) {
        // The directory names every number's LID, the instance's too.
        let (EngineEvent::Paired {
            phone_number: Some(number),
            ..
        }
        | EngineEvent::Connected {
            phone_number: Some(number),
            ..
        }) = event
        else {
            return;
        };
        let known = groups::person(&format!("{number}@s.whatsapp.net"));
        self.own.insert(instance_id, known);
    }
}

/// The LID the scripted directory gives a number: its digits reversed,
/// so that each number has its own.
fn scripted_lid(number: &str) -> String {
    format!("{}@lid", number.chars().rev().collect::<String>())
}

/// What `wagate-scripted` plays for a newcomer trying the API.
struct Playground {
    /// The first number handed out; later instances count up from it.
    base: u64,
    numbers: HashMap<Uuid, String>,
    /// How long after a send the recipient "delivers" it, and as long again
    /// until it "reads" it.
    receipt_delay: Duration,
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
            state.remember_own(instance_id, &event);
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

    /// Makes a disconnect announce itself with a `Disconnected` event, as
    /// the real client's does.
    pub fn announce_disconnects(&self, announce: bool) {
        self.lock().announce_disconnects = announce;
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

    /// Plays WhatsApp for people trying the gateway: each instance it starts
    /// comes online with a number of its own (`base`, then `base + 1`, … in
    /// the order they start; an instance keeps its number while the process
    /// runs), and each send is delivered after `receipt_delay` and read as
    /// long again after that. Implies [`Self::resume_everyone`].
    pub fn playground(&self, base: u64, receipt_delay: Duration) {
        let mut state = self.lock();
        state.resume_everyone = true;
        state.playground = Some(Playground {
            base,
            numbers: HashMap::new(),
            receipt_delay,
        });
    }

    /// The playground number of `instance_id`, handed out on first use.
    fn number_for(state: &mut State, instance_id: Uuid) -> Option<String> {
        let playground = state.playground.as_mut()?;
        let next = playground.base + playground.numbers.len() as u64;
        Some(
            playground
                .numbers
                .entry(instance_id)
                .or_insert_with(|| next.to_string())
                .clone(),
        )
    }

    /// In the playground, the recipient delivers and then reads `sent`.
    fn play_receipts(&self, instance_id: Uuid, to_jid: &str, sent: &Result<String, EngineError>) {
        let (Ok(message_id), Some(delay)) = (
            sent,
            self.lock().playground.as_ref().map(|p| p.receipt_delay),
        ) else {
            return;
        };
        let engine = self.clone();
        let from = playground_party(to_jid);
        let message_ids = vec![message_id.clone()];
        tokio::spawn(async move {
            for kind in [ReceiptKind::Delivered, ReceiptKind::Read] {
                tokio::time::sleep(delay).await;
                let receipt = EngineEvent::Receipt {
                    message_ids: message_ids.clone(),
                    kind,
                    from: from.clone(),
                };
                if !engine.emit(instance_id, receipt).await {
                    return;
                }
            }
        });
    }

    /// In the playground, the recipient of poll `poll_id` votes for
    /// `picked` after the receipts (a vote encrypted with the poll's secret,
    /// as a phone sends it).
    fn play_vote(
        &self,
        instance_id: Uuid,
        voter_jid: &str,
        poll_id: &str,
        picked: &[String],
        secret: &[u8; 32],
    ) {
        let (delay, creator) = {
            let mut state = self.lock();
            let Some(delay) = state.playground.as_ref().map(|p| p.receipt_delay) else {
                return;
            };
            let Some(number) = Self::number_for(&mut state, instance_id) else {
                return;
            };
            (delay, format!("{number}@s.whatsapp.net"))
        };
        let vote = match crate::whatsapp::content::outgoing::seal_vote(
            picked, secret, poll_id, &creator, voter_jid,
        ) {
            Ok(vote) => vote,
            Err(e) => {
                tracing::warn!(error = %e, "scripted vote not sealed");
                return;
            }
        };
        let inbound = Inbound {
            from_me: false,
            chat_subject: None,
            message_id: format!("3EB0VOTE{}", Uuid::now_v7().simple()),
            from: playground_party(voter_jid),
            chat: voter_jid.to_owned(),
            timestamp: chrono::Utc::now(),
            content: Content::PollVote {
                poll_id: poll_id.to_owned(),
                vote,
            },
        };
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay * 3).await;
            engine
                .emit(instance_id, EngineEvent::Message(Box::new(inbound)))
                .await;
        });
    }

    /// In the playground, the recipient of a text asking "call me" calls
    /// back (a voice call) after the receipts.
    fn play_call(&self, instance_id: Uuid, caller_jid: &str) {
        let Some(delay) = self.lock().playground.as_ref().map(|p| p.receipt_delay) else {
            return;
        };
        let call = IncomingCall {
            call_id: format!("SCRIPTEDCALL{}", Uuid::now_v7().simple()),
            from: playground_party(caller_jid),
            from_device: caller_jid.to_owned(),
            creator_jid: caller_jid.to_owned(),
            video: false,
            offered_at: chrono::Utc::now(),
        };
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay * 3).await;
            engine.emit(instance_id, EngineEvent::Call(call)).await;
        });
    }

    /// Who `instance_id` is on WhatsApp; an instance never paired is
    /// given a number of its own.
    fn own(state: &State, instance_id: Uuid) -> Party {
        state.own.get(&instance_id).cloned().unwrap_or_else(|| {
            let number = 100_000_000_000 + instance_id.as_u128() % 100_000_000_000;
            groups::person(&format!("{number}@s.whatsapp.net"))
        })
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
                let phone_number = Self::number_for(&mut state, instance_id);
                let connected = EngineEvent::Connected {
                    jid: phone_number
                        .as_ref()
                        .map(|n| format!("{n}:1@s.whatsapp.net")),
                    phone_number,
                };
                state.remember_own(instance_id, &connected);
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
        let sink = {
            let mut state = self.engine.lock();
            state.calls.push(Call::Disconnect(self.instance_id));
            let sink = state.sinks.remove(&self.instance_id);
            sink.filter(|_| state.announce_disconnects)
        };
        // As the real client does, when asked to.
        if let Some(sink) = sink {
            let reason = "disconnected by the gateway".into();
            let _ = sink
                .send((self.instance_id, EngineEvent::Disconnected { reason }))
                .await;
        }
    }

    async fn send_text(
        &self,
        to_jid: &str,
        text: &str,
        context: &Context,
    ) -> Result<String, EngineError> {
        let (sent, delay) = {
            let mut state = self.engine.lock();
            state.calls.push(Call::SendText {
                instance: self.instance_id,
                to: to_jid.to_owned(),
                text: text.to_owned(),
                context: context.clone(),
            });
            (
                next_message_id(&mut state, context.message_id.as_deref()),
                state.send_delay,
            )
        };
        tracing::info!(to = to_jid, "scripted send started");
        tokio::time::sleep(delay).await;
        self.engine.play_receipts(self.instance_id, to_jid, &sent);
        if sent.is_ok() && text.to_lowercase().contains("call me") {
            self.engine.play_call(self.instance_id, to_jid);
        }
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
            size: media.body.len() as usize,
            file_name: media.file_name,
            caption: media.caption,
            voice: media.voice,
            context: media.context.clone(),
        });
        let sent = next_message_id(&mut state, media.context.message_id.as_deref());
        drop(state);
        self.engine.play_receipts(self.instance_id, to_jid, &sent);
        sent
    }

    async fn send_message(
        &self,
        to_jid: &str,
        message: OutgoingMessage,
        context: &Context,
    ) -> Result<String, EngineError> {
        let mut state = self.engine.lock();
        state.calls.push(Call::SendMessage {
            instance: self.instance_id,
            to: to_jid.to_owned(),
            message: message.clone(),
            context: context.clone(),
        });
        let sent = next_message_id(&mut state, context.message_id.as_deref());
        drop(state);
        self.engine.play_receipts(self.instance_id, to_jid, &sent);
        if let (
            Ok(id),
            OutgoingMessage::Poll {
                options, secret, ..
            },
        ) = (&sent, &message)
        {
            self.engine
                .play_vote(self.instance_id, to_jid, id, &options[..1], secret);
        }
        sent
    }

    async fn reject_call(&self, call: &IncomingCall) -> Result<(), EngineError> {
        self.record(Call::RejectCall {
            instance: self.instance_id,
            call_id: call.call_id.clone(),
            from: call.from.jid.clone(),
        })
    }

    async fn edit_text(
        &self,
        to_jid: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), EngineError> {
        self.record(Call::EditText {
            instance: self.instance_id,
            to: to_jid.to_owned(),
            message_id: message_id.to_owned(),
            text: text.to_owned(),
        })
    }

    async fn revoke(&self, to_jid: &str, message_id: &str) -> Result<(), EngineError> {
        self.record(Call::Revoke {
            instance: self.instance_id,
            to: to_jid.to_owned(),
            message_id: message_id.to_owned(),
        })
    }

    async fn mark_read(&self, chat_jid: &str, message_ids: &[String]) -> Result<(), EngineError> {
        self.record(Call::MarkRead {
            instance: self.instance_id,
            chat: chat_jid.to_owned(),
            message_ids: message_ids.to_vec(),
        })
    }

    async fn chat_presence(&self, chat_jid: &str, state: ChatPresence) -> Result<(), EngineError> {
        self.record(Call::ChatPresence {
            instance: self.instance_id,
            chat: chat_jid.to_owned(),
            state,
        })
    }

    async fn set_presence(&self, available: bool) -> Result<(), EngineError> {
        self.record(Call::SetPresence {
            instance: self.instance_id,
            available,
        })
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
                    lid: jid.as_ref().map(|_| scripted_lid(n)),
                    jid,
                }
            })
            .collect())
    }

    async fn lookup_contact(
        &self,
        key: &super::ContactKey,
    ) -> Result<Option<super::Party>, EngineError> {
        let state = self.engine.lock();
        let number = match key {
            super::ContactKey::Phone(n) => {
                (state.directory.contains_key(n) || state.resume_everyone).then(|| n.clone())
            }
            super::ContactKey::Lid(l) => state
                .directory
                .keys()
                .find(|n| scripted_lid(n) == format!("{l}@lid"))
                .cloned(),
        };
        Ok(number.map(|n| super::Party {
            jid: match key {
                super::ContactKey::Phone(_) => format!("{n}@s.whatsapp.net"),
                super::ContactKey::Lid(l) => format!("{l}@lid"),
            },
            lid: Some(scripted_lid(&n)),
            phone_number: Some(n),
        }))
    }

    async fn download_media(
        &self,
        media: &super::MediaRef,
        sink: Box<dyn super::MediaSink>,
    ) -> Result<String, super::MediaError> {
        self.download(media, sink).await
    }

    fn groups(&self) -> Option<&dyn crate::engine::groups::GroupSession> {
        Some(self)
    }
}

impl ScriptedSession {
    /// Records an operation that sends nothing new; it fails when sends do.
    fn record(&self, call: Call) -> Result<(), EngineError> {
        let mut state = self.engine.lock();
        state.calls.push(call);
        if state.fail_sends {
            return Err(EngineError::Refused("scripted send failure".into()));
        }
        Ok(())
    }
}

/// A playground contact, known by number.
fn playground_party(jid: &str) -> Party {
    Party {
        jid: jid.to_owned(),
        phone_number: jid.split('@').next().map(str::to_owned),
        lid: None,
    }
}

/// The id asked for, as the real client uses it, else a fresh one.
fn next_message_id(state: &mut State, asked: Option<&str>) -> Result<String, EngineError> {
    if state.fail_sends {
        return Err(EngineError::Refused("scripted send failure".into()));
    }
    state.sent += 1;
    Ok(asked
        .map(str::to_owned)
        .unwrap_or_else(|| format!("3EB0SCRIPTED{:08X}", state.sent)))
}
