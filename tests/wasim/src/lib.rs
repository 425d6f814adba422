//! wasim: a WhatsApp Web server simulator on loopback.
//!
//! It speaks the real wire protocol (Noise XX, binary nodes, Signal) so the
//! unmodified whatsapp-rust client can pair, log in, send and receive
//! receipts against it. Tests drive the "phone" and the world through
//! [`Sim`]. Test and benchmark use only.

mod appstate;
mod appstate_seed;
mod calls;
mod cert;
mod conn;
mod control;
pub mod error;
mod group_messages;
mod groups;
mod handshake;
mod iq;
mod keys;
pub mod media;
mod messages;
mod nodes;
mod offline;
mod pair_code;
pub mod phone;
mod prekeys;
pub mod seed;
mod server;
mod session;
mod signal;
mod usync;
mod web;
mod wire;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use buffa::MessageField;
pub use error::{Result, SimError};
pub use seed::{Seed, Seeded};
use server::Shared;
pub use waproto::whatsapp as wa;
pub use web::Upload;
pub use world::{Received, SimEvent, Stanza};

/// Installs rustls' ring provider for the process unless one is set. Built
/// in one workspace with wagate, reqwest has no provider of its own, and
/// the clients that tests and the bench make would panic without it.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A running simulator. Dropping it stops accepting connections.
pub struct Sim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Sim {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Listens on `addr` (`host:port`).
    pub async fn start_on(addr: &str) -> Result<Self> {
        install_crypto_provider();
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(Arc::new(world::World::new()), addr));
        let accept = tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// Base URL of the HTTP side (media, version file, `/control/*`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL to give the client's WebSocket transport.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// Everything that happens from now on.
    pub fn events(&self) -> broadcast::Receiver<SimEvent> {
        self.shared.world.events.subscribe()
    }

    /// Puts a number in the directory (on WhatsApp, no companion here).
    pub fn register_number(&self, phone: &str) -> Result<()> {
        control::register_number(&self.shared, phone)
    }

    /// Numbers on WhatsApp: accounts and directory entries.
    pub fn registered_numbers(&self) -> Vec<String> {
        control::registered_numbers(&self.shared)
    }

    /// Acts as the phone of `phone` scanning `qr`: the companion showing it
    /// becomes a new device of that account. Returns the device's JID.
    pub fn scan_qr(&self, qr: &str, phone: &str) -> Result<String> {
        control::scan_qr(&self.shared, qr, phone)
    }

    /// The user types the pair `code` the companion showed on the phone
    /// whose number the companion asked for. Returns that number.
    pub fn enter_pair_code(&self, code: &str) -> Result<String> {
        pair_code::enter(&self.shared, code)
    }

    /// Refuses logins of `phone` with `<failure reason=code>` (None: accept).
    pub fn refuse_logins(&self, phone: &str, code: Option<u16>) {
        control::refuse_logins(&self.shared, phone, code);
    }

    /// Delays every answer by `delay`.
    pub fn delay(&self, delay: Duration) {
        control::delay(&self.shared, delay);
    }

    /// Whether the server has taken in message `id` from its sender.
    pub fn knows_message(&self, id: &str) -> bool {
        self.shared.world.lock().sent.contains_key(id)
    }

    /// How many messages the simulator delivered to `phone:device` that the
    /// device has not acknowledged yet (they go again at its next login).
    pub fn unacked(&self, phone: &str, device: u16) -> usize {
        self.shared
            .world
            .lock()
            .unacked
            .get(&(phone.to_owned(), device))
            .map_or(0, Vec::len)
    }

    /// The recipient of message `id` reports it delivered.
    pub fn deliver(&self, id: &str) -> Result<()> {
        control::receipt(&self.shared, id, None)
    }

    /// The recipient of message `id` reports it read.
    pub fn read(&self, id: &str) -> Result<()> {
        control::receipt(&self.shared, id, Some("read"))
    }

    /// The phone of `phone` removes its companion `device`.
    pub fn unlink(&self, phone: &str, device: u16) -> Result<()> {
        control::unlink(&self.shared, phone, device)
    }

    /// Drops the socket of `phone:device` without a word.
    pub fn drop_connection(&self, phone: &str, device: u16) -> Result<()> {
        control::drop_connection(&self.shared, phone, device)
    }

    /// Sends `<stream:error code>` to `phone:device` and closes.
    pub fn stream_error(&self, phone: &str, device: u16, code: u16) -> Result<()> {
        control::stream_error(&self.shared, phone, device, code)
    }

    /// The phone of `from` sends `text` to the online companions of `to`
    /// (a real Signal message). Returns the message id.
    pub async fn send_text(&self, from: &str, to: &str, text: &str) -> Result<String> {
        control::send_text(&self.shared, from, to, text).await
    }

    /// What the phone of `phone` received and decrypted, oldest first.
    pub fn received(&self, phone: &str) -> Vec<Received> {
        self.shared
            .world
            .lock()
            .received
            .get(phone)
            .cloned()
            .unwrap_or_default()
    }

    /// The non-message stanzas (receipts, chat states, presences, calls)
    /// the devices of `phone` sent, oldest first.
    pub fn stanzas(&self, phone: &str) -> Vec<Stanza> {
        self.shared
            .world
            .lock()
            .stanzas
            .get(phone)
            .cloned()
            .unwrap_or_default()
    }

    /// The phone of `from` sends `message` to the online companions of
    /// `to` (a real Signal message). Returns the message id.
    pub async fn send_message(
        &self,
        from: &str,
        to: &str,
        message: &wa::Message,
    ) -> Result<String> {
        control::phone_sends(&self.shared, from, to, None, message).await
    }

    /// The phone of `phone` sends `message` to `to` as its owner typed it
    /// there: the account's online companions get it from the phone as a
    /// device-sent message (the content wrapped in `deviceSentMessage`,
    /// the stanza naming the recipient). The recipient's receipts then
    /// follow [`Self::deliver`] and [`Self::read`]. Returns the message id.
    pub async fn phone_sends_elsewhere(
        &self,
        phone: &str,
        to: &str,
        message: wa::Message,
    ) -> Result<String> {
        let recipient = format!("{to}@s.whatsapp.net");
        let wrapped = wa::Message {
            device_sent_message: MessageField::some(wa::message::DeviceSentMessage {
                destination_jid: Some(recipient.clone()),
                message: MessageField::some(message),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id =
            control::phone_sends_as(&self.shared, phone, phone, None, &wrapped, Some(&recipient))
                .await?;
        // The recipient's receipts go to the account's devices, as for a
        // message a companion sent: `deliver` and `read` can send them.
        let mut state = self.shared.world.lock();
        let companion = state.accounts.get(phone).and_then(|a| {
            a.devices
                .iter()
                .find(|(_, d)| d.conn.is_some())
                .map(|(n, _)| *n)
        });
        if let Some(device) = companion {
            state.sent.insert(
                id.clone(),
                world::SentMessage {
                    phone: phone.to_owned(),
                    device,
                    to: to.to_owned(),
                },
            );
        }
        Ok(id)
    }

    /// The phone of `from` calls `to` (voice, or video); the call's
    /// signalling, a rejection included, shows in [`Self::stanzas`] of
    /// `to`. Returns the call id.
    pub fn offer_call(&self, from: &str, to: &str, video: bool) -> Result<String> {
        calls::offer_call(&self.shared, from, to, video)
    }

    /// The phone of `voter` votes for `picked` on poll `poll_id`, which
    /// `creator` sent to it with the message secret `secret` (the poll's
    /// `message_context_info.message_secret`). Returns the vote's id.
    pub async fn vote(
        &self,
        voter: &str,
        creator: &str,
        poll_id: &str,
        secret: &[u8],
        picked: &[&str],
    ) -> Result<String> {
        let message = calls::poll_vote(secret, poll_id, creator, voter, picked)?;
        control::phone_sends(&self.shared, voter, creator, None, &message).await
    }

    /// The phone of `from` sends `plaintext` as media of `kind` to the
    /// online companions of `to`: encrypted with a fresh media key and
    /// uploaded to the simulated media host (see [`media`]).
    pub async fn send_media(
        &self,
        from: &str,
        to: &str,
        kind: media::Kind,
        plaintext: &[u8],
        options: media::MediaOptions,
    ) -> Result<media::SentMedia> {
        media::send_media(&self.shared, from, to, kind, plaintext, options).await
    }

    /// [`Self::send_media`] in two steps: encrypts `plaintext` and puts it
    /// on the media host now; [`Self::send_uploaded`] sends the message
    /// later (so that many large files can be sent at one moment).
    pub fn upload_media(
        &self,
        kind: media::Kind,
        plaintext: &[u8],
        options: media::MediaOptions,
    ) -> Result<media::UploadedMedia> {
        media::upload_media(&self.shared, kind, plaintext, options)
    }

    /// The phone of `from` sends media [`Self::upload_media`] prepared to
    /// the online companions of `to`.
    pub async fn send_uploaded(
        &self,
        from: &str,
        to: &str,
        media: &media::UploadedMedia,
    ) -> Result<media::SentMedia> {
        media::send_uploaded(&self.shared, from, to, media).await
    }

    /// Re-uploads the simulated phones made on a device's request.
    pub fn media_reuploads(&self) -> usize {
        self.shared.expired.reuploads()
    }

    /// Media uploaded to the simulated media hosts so far.
    pub fn uploads(&self) -> usize {
        self.shared.media.count("/v/")
    }

    /// Every upload the media hosts took, oldest first.
    pub fn upload_log(&self) -> Vec<Upload> {
        self.shared.media.uploads()
    }

    /// The (encrypted) file stored at a media message's `direct_path`.
    pub fn media(&self, direct_path: &str) -> Option<bytes::Bytes> {
        self.shared.media.get(direct_path)
    }

    /// Serves `bytes` over plain HTTP (for media-by-URL sends); returns
    /// the URL.
    pub fn serve_file(&self, name: &str, bytes: impl Into<bytes::Bytes>) -> String {
        let path = format!("/files/{name}");
        self.shared.media.put(path.clone(), bytes.into());
        format!("{}{path}", self.http_url())
    }

    /// How many devices are logged in right now.
    pub fn online_devices(&self) -> usize {
        self.shared
            .world
            .lock()
            .accounts
            .values()
            .flat_map(|a| a.devices.values())
            .filter(|d| d.conn.is_some())
            .count()
    }

    /// How many times a device logged in while its earlier socket was
    /// still open: moments two sockets of one device were open at once.
    pub fn device_overlaps(&self) -> u64 {
        self.shared.world.overlaps.load(Ordering::Relaxed)
    }

    /// How many stream-replaced errors (`conflict type="replaced"`) the
    /// simulator sent: each is a session pushed out by a second login.
    pub fn streams_replaced(&self) -> u64 {
        self.shared.world.replaced.load(Ordering::Relaxed)
    }

    /// The most WebSocket connections that were in their handshake (accept
    /// to login answered) at once since the start or the last
    /// [`Sim::reset_most_handshakes`].
    pub fn most_handshakes(&self) -> usize {
        self.shared.handshakes.most()
    }

    pub fn reset_most_handshakes(&self) {
        self.shared.handshakes.reset_most();
    }

    /// Whether device `phone:device` has uploaded its signed prekey.
    pub fn has_prekeys(&self, phone: &str, device: u16) -> bool {
        self.shared
            .world
            .lock()
            .accounts
            .get(phone)
            .and_then(|a| a.devices.get(&device))
            .is_some_and(|d| d.signed_prekey.is_some() && !d.prekeys.is_empty())
    }

    /// Whether device `phone:device` has a logged-in connection.
    pub fn is_online(&self, phone: &str, device: u16) -> bool {
        self.shared
            .world
            .lock()
            .accounts
            .get(phone)
            .and_then(|a| a.devices.get(&device))
            .is_some_and(|d| d.conn.is_some())
    }

    /// Members of group `group` (`…@g.us` or its id) by number, each
    /// with whether it is an admin; None when there is no such group.
    pub fn group_members(&self, group: &str) -> Option<Vec<(String, bool)>> {
        groups::members(&self.shared.world.lock(), group)
    }

    /// The groups the simulator knows, by JID, with their subjects.
    pub fn groups(&self) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = self
            .shared
            .world
            .lock()
            .groups
            .values()
            .map(|g| (g.jid(), g.subject.clone()))
            .collect();
        list.sort();
        list
    }

    /// The phone of `phone` joins a group by invite `code` (or link), as
    /// its owner tapping the link would. Returns the group's JID.
    pub fn join_group(&self, phone: &str, code: &str) -> Result<String> {
        groups::phone_joins(&self.shared, phone, code)
    }

    /// The phone of member `from` sends `message` to `group`: its sender
    /// key pairwise to each online companion of the other members, then
    /// the content as a `skmsg`. Returns the message id.
    pub async fn send_group_message(
        &self,
        from: &str,
        group: &str,
        message: &wa::Message,
    ) -> Result<String> {
        group_messages::member_sends(&self.shared, from, group, message).await
    }

    /// [`Self::send_group_message`] with a text.
    pub async fn send_group_text(&self, from: &str, group: &str, text: &str) -> Result<String> {
        let message = wa::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        self.send_group_message(from, group, &message).await
    }

    /// Member `member` reports the group message `id` delivered.
    pub fn deliver_in_group(&self, id: &str, member: &str) -> Result<()> {
        group_messages::member_receipt(&self.shared, id, member, None)
    }

    /// Member `member` reports the group message `id` read.
    pub fn read_in_group(&self, id: &str, member: &str) -> Result<()> {
        group_messages::member_receipt(&self.shared, id, member, Some("read"))
    }

    /// Waits for the first event `pick` accepts on `events`, up to `within`.
    pub async fn wait_for<T>(
        events: &mut broadcast::Receiver<SimEvent>,
        within: Duration,
        mut pick: impl FnMut(&SimEvent) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(event)) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(SimError::Closed),
                Err(_) => {
                    return Err(SimError::NotFound(format!(
                        "no such event within {within:?}"
                    )));
                }
            }
        }
    }
}
