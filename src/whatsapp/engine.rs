//! The real engine: one whatsapp-rust `Bot` per instance, its keys in a
//! storage backend of the instance's own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use uuid::Uuid;
use whatsapp_rust::SendOptions;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::client::Client;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;

use whatsapp_rust::Jid;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::media::{
    AudioOptions, DocumentOptions, ImageOptions, VideoOptions, audio_message, document_message,
    image_message, video_message,
};
use whatsapp_rust::prelude::{MessageBuilderExt, wa};

use super::content::outgoing::{poll_message, with_context};
use super::device_saving::{self, NewestDevice};
use super::durable::CommitFirst;
use super::http::ReqwestHttp;
use super::translate::{bare, translate_all};
use crate::engine::{
    ChatPresence, ContactKey, Context, Engine, EngineError, EngineEvent, EventSink, IncomingCall,
    MediaKind, NumberInfo, OutgoingMedia, OutgoingMessage, Party, Session,
};

/// Where each instance's keys live.
#[async_trait::async_trait]
pub trait BackendSource: Send + Sync {
    /// The storage backend of one instance (one device), outside a running
    /// client.
    fn backend(&self, instance_id: Uuid) -> Arc<dyn Backend> {
        self.session_backend(instance_id, Arc::default())
    }
    /// The backend a running client uses: its device saves take turns and
    /// write `newest`'s state once attached.
    fn session_backend(&self, instance_id: Uuid, newest: Arc<NewestDevice>) -> Arc<dyn Backend>;
    /// Deletes everything the instance's device stored.
    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError>;
}

pub struct WhatsAppEngine {
    backends: Arc<dyn BackendSource>,
    http: ReqwestHttp,
    ws_url: Option<String>,
    connect_timeout: Duration,
    clients: Mutex<HashMap<Uuid, Weak<Client>>>,
}

impl WhatsAppEngine {
    /// The running client of an instance, for tests that drive the crate's
    /// own handlers (the pair-device IQ) without a server.
    pub fn client(&self, instance_id: Uuid) -> Option<Arc<Client>> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.get(&instance_id).and_then(Weak::upgrade)
    }

    /// `ws_url` replaces WhatsApp's server (a simulator, in tests);
    /// `connect_timeout` bounds how long a start may stay without a socket
    /// before it is reported as disconnected.
    pub fn new(
        backends: Arc<dyn BackendSource>,
        ws_url: Option<String>,
        connect_timeout: Duration,
    ) -> Result<Self, EngineError> {
        let http = ReqwestHttp::new().map_err(|e| EngineError::Other(e.to_string()))?;
        #[cfg(feature = "sim")]
        let http = http.redirected_to(ws_url.as_deref());
        Ok(Self {
            backends,
            http,
            ws_url,
            connect_timeout,
            clients: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait::async_trait]
impl Engine for WhatsAppEngine {
    async fn start(
        &self,
        instance_id: Uuid,
        sink: EventSink,
    ) -> Result<Arc<dyn Session>, EngineError> {
        let mut transport = TokioWebSocketTransportFactory::new();
        if let Some(url) = &self.ws_url {
            transport = transport.with_url(url.clone());
        }
        let qr_attempts = Arc::new(AtomicU32::new(0));
        let retired = Arc::new(AtomicBool::new(false));
        let retire = retired.clone();
        let events = sink.clone();
        let newest = Arc::new(NewestDevice::default());
        let backend = self.backends.session_backend(instance_id, newest.clone());
        let lookups = backend.clone();
        let commit_first = CommitFirst {
            instance_id,
            sink: sink.clone(),
            lookups: backend.clone(),
        };
        let bot = Bot::builder()
            .with_backend_arc(backend)
            .with_inbound_durability_hook(commit_first)
            .with_transport_factory(transport)
            .with_http_client(self.http.clone())
            .with_runtime(TokioRuntime)
            .on_event(move |event: Arc<Event>, client: Arc<Client>| {
                let attempt = match &*event {
                    Event::PairingQrCode(_) => qr_attempts.fetch_add(1, Ordering::Relaxed) + 1,
                    Event::PairSuccess(_) => {
                        qr_attempts.store(0, Ordering::Relaxed);
                        0
                    }
                    _ => 0,
                };
                let translated = match &*event {
                    Event::GroupUpdate(update) => {
                        let mine: Vec<_> =
                            [client.pn(), client.lid()].into_iter().flatten().collect();
                        super::groups::notification(update, &mine)
                    }
                    _ => translate_all(&event, client.pn().as_ref(), attempt),
                };
                let flush_first = device_saving::must_flush(&event);
                if matches!(&*event, Event::LoggedOut(_)) {
                    retire.store(true, Ordering::Release);
                }
                let (events, lookups) = (events.clone(), lookups.clone());
                async move {
                    // An instance reported paired or online can be killed
                    // at once and must come back without a new QR code.
                    if flush_first {
                        device_saving::flush(&client, instance_id).await;
                    }
                    for mut e in translated {
                        complete_parties(&*lookups, &mut e).await;
                        let _ = events.send((instance_id, e)).await;
                    }
                }
            })
            .build()
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        newest.attach(&bot.client().persistence_manager());
        let handle = bot.spawn();
        let client = handle.client();
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance_id, Arc::downgrade(&client));
        device_saving::spawn_ticker(Arc::downgrade(&client), instance_id, retired.clone());

        // A failed connection attempt raises no event of its own; without this
        // an unreachable server would leave the instance looking healthy.
        let watched = client.clone();
        let timeout = self.connect_timeout;
        tokio::spawn(async move {
            if let Err(e) = watched.wait_for_socket(timeout).await {
                let reason = format!("could not reach WhatsApp: {e}");
                let _ = sink
                    .send((instance_id, EngineEvent::Disconnected { reason }))
                    .await;
            }
        });

        Ok(Arc::new(WhatsAppSession {
            groups: super::groups::WaGroups(client.clone()),
            client,
            handle: Mutex::new(Some(handle)),
            answer_timeout: timeout,
            retired,
        }))
    }

    async fn wipe(&self, instance_id: Uuid) -> Result<(), EngineError> {
        self.backends.wipe(instance_id).await
    }
}

/// Fills in the phone number of a person WhatsApp named only by LID, from
/// the LID<->phone mapping the client keeps in our store.
pub async fn complete_parties(store: &dyn Backend, event: &mut EngineEvent) {
    match event {
        EngineEvent::Receipt { from, .. } => complete_party(store, from).await,
        EngineEvent::Message(inbound) => complete_party(store, &mut inbound.from).await,
        EngineEvent::Messages { messages, .. } => {
            for m in messages {
                complete_party(store, &mut m.from).await;
            }
        }
        EngineEvent::Group(group) => {
            for person in group.people_mut() {
                complete_party(store, person).await;
            }
        }
        _ => {}
    }
}

/// [`complete_parties`] for one person.
pub async fn complete_party(store: &dyn Backend, party: &mut Party) {
    if party.phone_number.is_some() {
        return;
    }
    let Some(lid) = &party.lid else { return };
    let user = lid.split(['@', ':']).next().unwrap_or(lid);
    if let Ok(Some(mapping)) = store.get_lid_mapping(user).await {
        party.phone_number = Some(mapping.phone_number);
    }
}

struct WhatsAppSession {
    client: Arc<Client>,
    groups: super::groups::WaGroups,
    handle: Mutex<Option<BotHandle>>,
    answer_timeout: Duration,
    /// Set once the device is logged out: its state is not saved again.
    retired: Arc<AtomicBool>,
}

impl WhatsAppSession {
    fn take_handle(&self) -> Option<BotHandle> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn connected(&self) -> Result<(), EngineError> {
        if self.client.is_connected() {
            Ok(())
        } else {
            Err(EngineError::NotConnected)
        }
    }

    async fn send(
        &self,
        to_jid: &str,
        message: wa::Message,
        message_id: Option<&str>,
    ) -> Result<String, EngineError> {
        let to = parse_jid(to_jid)?;
        let options = match message_id {
            Some(id) => SendOptions::default().with_message_id(id),
            None => SendOptions::default(),
        };
        self.client
            .send_message_with_options(to, message, options)
            .await
            .map(|sent| sent.message_id)
            .map_err(|e| EngineError::Refused(e.to_string()))
    }
}

fn contact(card: crate::engine::ContactCard) -> wa::message::ContactMessage {
    wa::message::ContactMessage {
        display_name: Some(card.display_name),
        vcard: Some(card.vcard),
        ..Default::default()
    }
}

fn parse_jid(jid: &str) -> Result<Jid, EngineError> {
    jid.parse()
        .map_err(|e| EngineError::Other(format!("`{jid}` is not a JID: {e}")))
}

#[async_trait::async_trait]
impl Session for WhatsAppSession {
    async fn pair_code(&self, phone_number: &str) -> Result<String, EngineError> {
        self.client
            .wait_for_socket(self.answer_timeout)
            .await
            .map_err(|e| EngineError::Timeout(e.to_string()))?;
        let options = PairCodeOptions {
            phone_number: phone_number.to_owned(),
            ..Default::default()
        };
        self.client
            .pair_with_code(options)
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn logout(&self) {
        self.retired.store(true, Ordering::Release);
        self.client.logout().await;
        if let Some(handle) = self.take_handle() {
            handle.shutdown().await;
        }
    }

    async fn disconnect(&self) {
        if let Some(handle) = self.take_handle() {
            handle.shutdown().await;
        }
    }

    async fn send_text(
        &self,
        to_jid: &str,
        text: &str,
        context: &Context,
    ) -> Result<String, EngineError> {
        self.connected()?;
        let message = with_context(wa::Message::text(text), context);
        self.send(to_jid, message, context.message_id.as_deref())
            .await
    }

    async fn typing(&self, to_jid: &str) -> Result<(), EngineError> {
        self.connected()?;
        let to = parse_jid(to_jid)?;
        self.client
            .chatstate()
            .send_composing(&to)
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn send_media(&self, to_jid: &str, media: OutgoingMedia) -> Result<String, EngineError> {
        self.connected()?;
        let media_type = match media.kind {
            MediaKind::Image => MediaType::Image,
            MediaKind::Video => MediaType::Video,
            MediaKind::Audio => MediaType::Audio,
            MediaKind::Document => MediaType::Document,
        };
        let uploaded = super::upload::upload(&self.client, media.body, media_type).await?;
        let mimetype = Some(media.mime_type);
        let message = match media.kind {
            MediaKind::Image => image_message(
                uploaded,
                ImageOptions {
                    caption: media.caption,
                    mimetype,
                    ..Default::default()
                },
            ),
            MediaKind::Video => video_message(
                uploaded,
                VideoOptions {
                    caption: media.caption,
                    mimetype,
                    ..Default::default()
                },
            ),
            MediaKind::Audio => audio_message(
                uploaded,
                AudioOptions {
                    mimetype,
                    ptt: Some(media.voice),
                    ..Default::default()
                },
            ),
            MediaKind::Document => document_message(
                uploaded,
                DocumentOptions {
                    mimetype,
                    file_name: media.file_name.clone(),
                    title: media.file_name,
                    caption: media.caption,
                    ..Default::default()
                },
            ),
        };
        let message = with_context(message, &media.context);
        self.send(to_jid, message, media.context.message_id.as_deref())
            .await
    }

    async fn send_message(
        &self,
        to_jid: &str,
        message: OutgoingMessage,
        context: &Context,
    ) -> Result<String, EngineError> {
        use whatsapp_rust::buffa::MessageField;
        self.connected()?;
        let refused = |e: &dyn std::fmt::Display| EngineError::Refused(e.to_string());
        let message = match message {
            OutgoingMessage::Reaction {
                target_id,
                from_me,
                emoji,
            } => {
                let key = wa::MessageKey {
                    remote_jid: Some(to_jid.to_owned()),
                    from_me: Some(from_me),
                    id: Some(target_id),
                    ..Default::default()
                };
                return self
                    .client
                    .send_reaction(parse_jid(to_jid)?, key, &emoji)
                    .await
                    .map(|sent| sent.message_id)
                    .map_err(|e| refused(&e));
            }
            // Built here rather than by the crate's poll helper, so the
            // gateway keeps the secret it needs to open votes.
            OutgoingMessage::Poll {
                question,
                options,
                selectable,
                secret,
            } => poll_message(&question, &options, selectable, &secret),
            OutgoingMessage::Location {
                latitude,
                longitude,
                name,
                address,
            } => wa::Message {
                location_message: MessageField::some(wa::message::LocationMessage {
                    degrees_latitude: Some(latitude),
                    degrees_longitude: Some(longitude),
                    name,
                    address,
                    ..Default::default()
                }),
                ..Default::default()
            },
            OutgoingMessage::Contacts(mut cards) if cards.len() == 1 => {
                let card = cards.remove(0);
                wa::Message {
                    contact_message: MessageField::some(contact(card)),
                    ..Default::default()
                }
            }
            OutgoingMessage::Contacts(cards) => wa::Message {
                contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                    display_name: Some(format!("{} contacts", cards.len())),
                    contacts: cards.into_iter().map(contact).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        self.send(
            to_jid,
            with_context(message, context),
            context.message_id.as_deref(),
        )
        .await
    }

    async fn reject_call(&self, call: &IncomingCall) -> Result<(), EngineError> {
        self.connected()?;
        self.client
            .voip()
            .reject_call(
                &call.call_id,
                &parse_jid(&call.from_device)?,
                &parse_jid(&call.creator_jid)?,
            )
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn edit_text(
        &self,
        to_jid: &str,
        message_id: &str,
        text: &str,
    ) -> Result<(), EngineError> {
        self.connected()?;
        self.client
            .edit_message(parse_jid(to_jid)?, message_id, wa::Message::text(text))
            .await
            .map(|_| ())
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn revoke(&self, to_jid: &str, message_id: &str) -> Result<(), EngineError> {
        self.connected()?;
        self.client
            .revoke_message(
                parse_jid(to_jid)?,
                message_id,
                whatsapp_rust::RevokeType::Sender,
            )
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn mark_read(&self, chat_jid: &str, message_ids: &[String]) -> Result<(), EngineError> {
        self.connected()?;
        let ids: Vec<&str> = message_ids.iter().map(String::as_str).collect();
        self.client
            .mark_as_read(&parse_jid(chat_jid)?, None, &ids)
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn chat_presence(&self, chat_jid: &str, state: ChatPresence) -> Result<(), EngineError> {
        self.connected()?;
        let to = parse_jid(chat_jid)?;
        let chatstate = self.client.chatstate();
        match state {
            ChatPresence::Typing => chatstate.send_composing(&to).await,
            ChatPresence::Recording => chatstate.send_recording(&to).await,
            ChatPresence::Paused => chatstate.send_paused(&to).await,
        }
        .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn set_presence(&self, available: bool) -> Result<(), EngineError> {
        self.connected()?;
        let presence = self.client.presence();
        if available {
            presence.set_available().await
        } else {
            presence.set_unavailable().await
        }
        .map_err(|e| EngineError::Refused(e.to_string()))
    }

    async fn download_media(
        &self,
        media: &crate::engine::MediaRef,
        sink: Box<dyn crate::engine::MediaSink>,
    ) -> Result<String, crate::engine::MediaError> {
        super::download::download(&self.client, media, sink).await
    }

    async fn lookup_contact(&self, key: &ContactKey) -> Result<Option<Party>, EngineError> {
        self.connected()?;
        super::contacts::lookup(&self.client, key).await
    }

    fn groups(&self) -> Option<&dyn crate::engine::groups::GroupSession> {
        Some(&self.groups)
    }

    async fn check_numbers(&self, numbers: &[String]) -> Result<Vec<NumberInfo>, EngineError> {
        self.connected()?;
        let jids: Vec<Jid> = numbers.iter().map(|n| Jid::pn(n.as_str())).collect();
        let results = self
            .client
            .contacts()
            .is_on_whatsapp(&jids)
            .await
            .map_err(|e| EngineError::Refused(e.to_string()))?;
        let answer =
            |n: &String, r: &whatsapp_rust::wacore::iq::usync::IsOnWhatsAppResult| NumberInfo {
                phone_number: n.clone(),
                registered: r.is_registered,
                jid: r
                    .is_registered
                    .then(|| bare(r.pn_jid.as_ref().unwrap_or(&r.jid))),
                lid: r.lid.as_ref().map(bare),
            };
        Ok(numbers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let matching = results.iter().find(|r| {
                    r.jid.user == n.as_str()
                        || r.pn_jid.as_ref().is_some_and(|p| p.user == n.as_str())
                });
                // WhatsApp may answer under another number (Brazil's ninth
                // digit); the answers keep the order of the question.
                let positional = (results.len() == numbers.len()).then(|| &results[i]);
                match matching.or(positional) {
                    Some(r) => answer(n, r),
                    None => NumberInfo {
                        phone_number: n.clone(),
                        registered: false,
                        jid: None,
                        lid: None,
                    },
                }
            })
            .collect())
    }
}
