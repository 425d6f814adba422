//! Everything the simulated WhatsApp knows: accounts and their devices, the
//! directory of registered numbers, live connections and the switches a
//! test flips. One mutex, never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use wacore_binary::Node;

use crate::error::Result;
use crate::keys::PhoneKeys;

pub type ConnId = u64;

/// What the writer task of a connection is asked to do.
#[derive(Debug)]
pub enum Outbound {
    Node(Node),
    /// Flush and close the WebSocket.
    Close,
}

/// Something that happened, for tests to await instead of sleeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    /// A registration connection asked for QR refs.
    PairingStarted { conn: ConnId },
    /// The companion signed its identity: pairing is complete.
    Paired { phone: String, device: u16 },
    /// A paired device logged in (`<success>` sent).
    LoggedIn { phone: String, device: u16 },
    /// A login was refused with `<failure>`.
    LoginRefused { phone: String, device: u16 },
    /// A connection ended.
    Disconnected { conn: ConnId },
    /// A device uploaded its prekeys.
    PreKeysUploaded { phone: String, device: u16 },
    /// A device acknowledged a message the simulator delivered to it.
    MessageAcked {
        phone: String,
        device: u16,
        id: String,
    },
    /// A device sent a message stanza (its id and recipient).
    MessageSent {
        phone: String,
        id: String,
        to: String,
    },
    /// The phone of `to` decrypted message `id` from `from`; its content
    /// is in [`crate::Sim::received`].
    MessageReceived {
        to: String,
        from: String,
        id: String,
    },
    /// A device sent a stanza other than a message (a receipt, chat state,
    /// presence or call); see [`crate::Sim::stanzas`].
    StanzaSent { phone: String, tag: String },
    /// Group `group` (`…@g.us`) changed as `what` says (`create`, `add`,
    /// `remove`, `promote`, `demote`, `subject`, `leave`, `join`, …).
    GroupChanged { group: String, what: String },
}

/// A message a simulated phone received and decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    /// The sender's phone number.
    pub from: String,
    /// The stanza's `edit` attribute (`1` edit, `7`/`8` revoke, ...).
    pub edit: Option<String>,
    /// The group (`…@g.us`) it was sent to; None for a one-to-one message.
    pub group: Option<String>,
    pub message: waproto::whatsapp::Message,
}

/// A non-message stanza a device sent, flattened for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    pub tag: String,
    pub attrs: BTreeMap<String, String>,
    /// Everything inside it, depth first: tag and attributes.
    pub children: Vec<(String, BTreeMap<String, String>)>,
}

fn attrs_of(node: &Node) -> BTreeMap<String, String> {
    node.attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_str().into_owned()))
        .collect()
}

fn descendants(node: &Node, out: &mut Vec<(String, BTreeMap<String, String>)>) {
    for child in node.children().unwrap_or_default() {
        out.push((child.tag.to_string(), attrs_of(child)));
        descendants(child, out);
    }
}

impl Stanza {
    pub fn of(node: &Node) -> Self {
        let mut children = Vec::new();
        descendants(node, &mut children);
        Self {
            tag: node.tag.to_string(),
            attrs: attrs_of(node),
            children,
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// A companion device of an account.
#[derive(Debug, Clone)]
pub struct Device {
    pub noise_pub: [u8; 32],
    pub identity_pub: [u8; 32],
    pub registration_id: u32,
    pub signed_prekey: Option<SignedPreKey>,
    pub prekeys: Vec<(u32, Vec<u8>)>,
    /// The identity the phone signed and the companion countersigned.
    pub signed_identity: Option<Vec<u8>>,
    pub conn: Option<ConnId>,
    /// Whether the phone has shared an app-state key with it yet.
    pub key_shared: bool,
}

/// A message a device sent, for receipts on command.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub phone: String,
    pub device: u16,
    /// The recipient's user (phone number or LID user).
    pub to: String,
}

#[derive(Debug, Clone)]
pub struct SignedPreKey {
    pub id: u32,
    pub public: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A WhatsApp account: a phone number with its primary phone (device 0,
/// simulated) and linked companions.
pub struct Account {
    pub phone: String,
    pub lid: String,
    /// The phone's Signal keys; its identity key signs companions too.
    pub keys: PhoneKeys,
    /// Sessions the phone opened to companions (inbound messages).
    pub signal: std::sync::Arc<tokio::sync::Mutex<crate::signal::PhoneSignal>>,
    pub next_device: u16,
    pub devices: BTreeMap<u16, Device>,
}

/// A connection that registers a new companion (shows QR codes).
#[derive(Debug, Clone)]
pub struct Registration {
    pub noise_pub: [u8; 32],
    pub identity_pub: [u8; 32],
    pub registration_id: u32,
    pub signed_prekey: Option<SignedPreKey>,
    pub refs: Vec<String>,
    /// Set once the phone scanned: which device this connection becomes.
    pub pairing: Option<(String, u16)>,
    /// A pairing by code the companion asked for.
    pub pair_code: Option<PairCodeFlow>,
}

/// The server's and the phone's state of a pairing by code.
#[derive(Debug, Clone)]
pub struct PairCodeFlow {
    pub phone: String,
    pub reference: Vec<u8>,
    /// The companion's ephemeral key, wrapped with the code.
    pub companion_wrapped: Vec<u8>,
    /// Once the code was entered: the companion's ephemeral key and the
    /// phone's ephemeral private key.
    pub entered: Option<([u8; 32], Vec<u8>)>,
}

pub struct Conn {
    pub tx: mpsc::UnboundedSender<Outbound>,
    pub role: Role,
}

pub enum Role {
    Registering(Box<Registration>),
    Device { phone: String, device: u16 },
}

#[derive(Default)]
pub struct State {
    pub accounts: HashMap<String, Account>,
    /// Messages devices sent, by id.
    pub sent: HashMap<String, SentMessage>,
    /// What each phone received and decrypted, by its number, in order.
    pub received: HashMap<String, Vec<Received>>,
    /// Non-message stanzas each account's devices sent, by number, in order.
    pub stanzas: HashMap<String, Vec<Stanza>>,
    pub conns: HashMap<ConnId, Conn>,
    /// Numbers whose logins get `<failure reason=code>`.
    pub refuse_logins: HashMap<String, u16>,
    pub delay: Duration,
    /// Message stanzas each device (`phone`, device) has not acknowledged
    /// yet, in the order they were sent: the offline queue.
    pub unacked: HashMap<(String, u16), Vec<(String, Node)>>,
    /// Groups by their id (the user part of `…@g.us`).
    pub groups: HashMap<String, crate::groups::Group>,
    /// Each phone's app-state key and collections, by its number.
    pub app_state: HashMap<String, crate::appstate_seed::PhoneAppState>,
}

pub struct World {
    state: Mutex<State>,
    next_id: AtomicU64,
    pub events: broadcast::Sender<SimEvent>,
    /// Logins of a device whose earlier socket was still open: moments
    /// two sockets of one device were open at once.
    pub overlaps: AtomicU64,
    /// `conflict type="replaced"` stream errors sent to the older socket.
    pub replaced: AtomicU64,
}

impl World {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            events,
            overlaps: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the whole simulator down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn emit(&self, event: SimEvent) {
        tracing::debug!(?event, "sim event");
        let _ = self.events.send(event);
    }

    /// Sends a node on a connection; false when it is gone.
    pub fn send(&self, conn: ConnId, node: Node) -> bool {
        self.lock()
            .conns
            .get(&conn)
            .is_some_and(|c| c.tx.send(Outbound::Node(node)).is_ok())
    }

    pub fn close(&self, conn: ConnId) {
        if let Some(c) = self.lock().conns.get(&conn) {
            let _ = c.tx.send(Outbound::Close);
        }
    }
}

impl State {
    /// Whether a number is on WhatsApp.
    pub fn is_registered(&self, phone: &str) -> bool {
        self.accounts.contains_key(phone)
    }

    /// The account whose phone number or LID user is `user`.
    pub fn find_user(&self, user: &str) -> Option<&Account> {
        self.accounts
            .get(user)
            .or_else(|| self.accounts.values().find(|a| a.lid == user))
    }

    /// The account of a number, created on first use (the phone scanning a
    /// QR code, or a contact the simulator plays).
    pub fn account(&mut self, phone: &str, next_id: u64) -> Result<&mut Account> {
        if !self.accounts.contains_key(phone) {
            let keys = PhoneKeys::generate()?;
            let signal = crate::signal::PhoneSignal::new(&keys.identity, keys.registration_id);
            let account = Account {
                phone: phone.to_owned(),
                // A LID is another opaque user number; unique per account.
                lid: format!("{}", 100_000_000_000_000u64 + next_id),
                keys,
                signal: std::sync::Arc::new(tokio::sync::Mutex::new(signal)),
                next_device: 1,
                devices: BTreeMap::new(),
            };
            self.accounts.insert(phone.to_owned(), account);
        }
        self.accounts
            .get_mut(phone)
            .ok_or_else(|| crate::error::SimError::NotFound(phone.to_owned()))
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
