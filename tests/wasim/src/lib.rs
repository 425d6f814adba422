//! wasim: a WhatsApp Web server simulator on loopback.
//!
//! It speaks the real wire protocol (Noise XX, binary nodes, Signal) so the
//! unmodified whatsapp-rust client can pair, log in, send and receive
//! receipts against it. Tests drive the "phone" and the world through
//! [`Sim`]. Test and benchmark use only.

mod appstate;
mod cert;
mod conn;
pub mod error;
mod handshake;
mod iq;
mod nodes;
pub mod phone;
mod prekeys;
mod server;
mod session;
mod wire;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use wacore_binary::builder::NodeBuilder;

pub use error::{Result, SimError};
use nodes::SERVER;
use server::Shared;
pub use world::SimEvent;
use world::Role;

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
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(Arc::new(world::World::new())));
        let accept = tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The URL to give the client's WebSocket transport.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// Everything that happens from now on.
    pub fn events(&self) -> broadcast::Receiver<SimEvent> {
        self.shared.world.events.subscribe()
    }

    /// Puts numbers in the directory (on WhatsApp, no companion here).
    pub fn register_number(&self, phone: &str) {
        self.shared.world.lock().directory.insert(phone.to_owned());
    }

    /// Numbers on WhatsApp: accounts and directory entries.
    pub fn registered_numbers(&self) -> Vec<String> {
        let state = self.shared.world.lock();
        let mut numbers: Vec<String> = state
            .accounts
            .keys()
            .chain(state.directory.iter())
            .cloned()
            .collect();
        numbers.sort();
        numbers.dedup();
        numbers
    }

    /// Acts as the phone of `phone` scanning `qr`: the companion showing it
    /// becomes a new device of that account. Returns the device's JID.
    pub fn scan_qr(&self, qr: &str, phone: &str) -> Result<String> {
        let code = phone::parse_qr(qr)?;
        let world = &self.shared.world;
        let id = world.next_id();
        let mut state = world.lock();
        let conn = state
            .conns
            .iter()
            .find_map(|(id, c)| match &c.role {
                Role::Registering(r) if r.refs.contains(&code.reference) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| SimError::NotFound(format!("no companion shows ref {}", code.reference)))?;
        let (noise_pub, identity_pub) = match state.conns.get(&conn).map(|c| &c.role) {
            Some(Role::Registering(r)) => (r.noise_pub, r.identity_pub),
            _ => return Err(SimError::NotFound("registration vanished".into())),
        };
        if noise_pub != code.noise_pub || identity_pub != code.identity_pub {
            return Err(SimError::BadRequest(
                "the QR keys are not those of the connection that shows it".into(),
            ));
        }
        let account = state.account(phone, id);
        let device = account.next_device;
        account.next_device += 1;
        let lid = account.lid.clone();
        let identity = phone::device_identity(
            &account.identity,
            &code.identity_pub,
            &code.adv_secret,
            device,
            u32::from(device),
            session::now_secs(),
        )?;
        if let Some(Role::Registering(r)) = state.conns.get_mut(&conn).map(|c| &mut c.role) {
            r.pairing = Some((phone.to_owned(), device));
        }
        drop(state);
        let jid = format!("{phone}:{device}@s.whatsapp.net");
        let pair_success = NodeBuilder::new("iq")
            .attr("from", SERVER)
            .attr("type", "set")
            .attr("id", self.shared.next_iq_id())
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-success")
                .children([
                    NodeBuilder::new("device-identity").bytes(identity).build(),
                    NodeBuilder::new("platform").attr("name", "smbi").build(),
                    NodeBuilder::new("device")
                        .attr("jid", jid.clone())
                        .attr("lid", format!("{lid}:{device}@lid"))
                        .build(),
                    NodeBuilder::new("biz").attr("name", format!("Sim {phone}")).build(),
                ])
                .build()])
            .build();
        world.send(conn, pair_success);
        Ok(jid)
    }

    /// Refuses logins of `phone` with `<failure reason=code>` (None: accept).
    pub fn refuse_logins(&self, phone: &str, code: Option<u16>) {
        let mut state = self.shared.world.lock();
        match code {
            Some(code) => state.refuse_logins.insert(phone.to_owned(), code),
            None => state.refuse_logins.remove(phone),
        };
    }

    /// Delays every answer by `delay`.
    pub fn delay(&self, delay: Duration) {
        self.shared.world.lock().delay = delay;
    }
}
