//! The protocol state of one connection: registration (QR refs, then the
//! pair-device-sign answer) or a paired device's login, and the stanzas it
//! sends afterwards.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::iq;
use crate::nodes::{SERVER, attr, child, describe};
use crate::server::Shared;
use crate::world::{Conn, ConnId, Outbound, Registration, Role, SignedPreKey, SimEvent};

/// QR codes a registration gets: one per ref, like WhatsApp's six.
const QR_REFS: usize = 6;

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Session {
    pub shared: Arc<Shared>,
    pub conn: ConnId,
    /// The device this connection speaks for, once logged in.
    pub me: Option<(String, u16)>,
}

fn be_u32(bytes: Option<&[u8]>) -> u32 {
    bytes
        .map(|b| b.iter().fold(0u32, |acc, x| acc << 8 | u32::from(*x)))
        .unwrap_or(0)
}

fn registration(
    noise_pub: [u8; 32],
    data: &wa::client_payload::DevicePairingRegistrationData,
) -> Registration {
    let identity_pub = data
        .e_ident
        .as_deref()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .unwrap_or([0; 32]);
    let signed_prekey = match (&data.e_skey_val, &data.e_skey_sig) {
        (Some(public), Some(signature)) => Some(SignedPreKey {
            id: be_u32(data.e_skey_id.as_deref()),
            public: public.clone(),
            signature: signature.clone(),
        }),
        _ => None,
    };
    Registration {
        noise_pub,
        identity_pub,
        registration_id: be_u32(data.e_regid.as_deref()),
        signed_prekey,
        refs: (0..QR_REFS)
            .map(|_| format!("2@{:032x}", rand::random::<u128>()))
            .collect(),
        pairing: None,
        pair_code: None,
    }
}

impl Session {
    pub fn open(
        shared: Arc<Shared>,
        conn: ConnId,
        tx: mpsc::UnboundedSender<Outbound>,
        client_static: [u8; 32],
        payload: wa::ClientPayload,
    ) -> Self {
        let mut session = Self {
            shared,
            conn,
            me: None,
        };
        match (payload.username, payload.device_pairing_data.as_option()) {
            (Some(user), _) => {
                let device = payload
                    .device
                    .and_then(|d| u16::try_from(d).ok())
                    .unwrap_or(0);
                session.login(tx, client_static, user.to_string(), device);
            }
            (None, Some(data)) => session.register(tx, registration(client_static, data)),
            (None, None) => {
                tracing::warn!(conn, "client payload is neither login nor registration");
                let _ = tx.send(Outbound::Node(failure(400)));
                let _ = tx.send(Outbound::Close);
            }
        }
        session
    }

    fn register(&mut self, tx: mpsc::UnboundedSender<Outbound>, registration: Registration) {
        let world = &self.shared.world;
        let refs = registration.refs.clone();
        world.lock().conns.insert(
            self.conn,
            Conn {
                tx,
                role: Role::Registering(Box::new(registration)),
            },
        );
        let pair_device = NodeBuilder::new("iq")
            .attr("from", SERVER)
            .attr("type", "set")
            .attr("id", self.shared.next_iq_id())
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-device")
                .children(
                    refs.into_iter()
                        .map(|r| NodeBuilder::new("ref").bytes(r.into_bytes()).build()),
                )
                .build()])
            .build();
        world.send(self.conn, pair_device);
        world.emit(SimEvent::PairingStarted { conn: self.conn });
    }

    fn login(
        &mut self,
        tx: mpsc::UnboundedSender<Outbound>,
        noise_pub: [u8; 32],
        phone: String,
        device: u16,
    ) {
        let world = self.shared.world.clone();
        let mut state = world.lock();
        let refused = state.refuse_logins.get(&phone).copied();
        let known = state
            .accounts
            .get(&phone)
            .and_then(|a| a.devices.get(&device).map(|d| (d.noise_pub, a.lid.clone())));
        let lid = match (refused, known) {
            (None, Some((key, lid))) if key == noise_pub => lid,
            (refused, _) => {
                // An unknown or removed device gets 401, which the client
                // reads as "logged out"; a refusal uses the code asked for.
                let code = refused.unwrap_or(401);
                drop(state);
                let _ = tx.send(Outbound::Node(failure(code)));
                let _ = tx.send(Outbound::Close);
                world.emit(SimEvent::LoginRefused { phone, device });
                return;
            }
        };
        let previous = state
            .accounts
            .get_mut(&phone)
            .and_then(|a| a.devices.get_mut(&device))
            .and_then(|d| d.conn.replace(self.conn));
        state.conns.insert(
            self.conn,
            Conn {
                tx: tx.clone(),
                role: Role::Device {
                    phone: phone.clone(),
                    device,
                },
            },
        );
        // A second login of the same device replaces the first, as on
        // WhatsApp.
        if let Some(old) = previous.and_then(|c| state.conns.get(&c)) {
            world.overlaps.fetch_add(1, Ordering::Relaxed);
            world.replaced.fetch_add(1, Ordering::Relaxed);
            let _ = old.tx.send(Outbound::Node(
                NodeBuilder::new("stream:error")
                    .children([NodeBuilder::new("conflict")
                        .attr("type", "replaced")
                        .build()])
                    .build(),
            ));
            let _ = old.tx.send(Outbound::Close);
        }
        drop(state);
        let now = now_secs().to_string();
        let success = NodeBuilder::new("success")
            .attr("t", now.clone())
            .attr("creation", now)
            .attr("props", "1")
            .attr("abprops", "1")
            .attr("location", "sim")
            .attr("lid", format!("{lid}@lid"))
            .build();
        let _ = tx.send(Outbound::Node(success));
        self.me = Some((phone.clone(), device));
        world.emit(SimEvent::LoggedIn { phone, device });
    }

    pub async fn handle(&mut self, node: Node) {
        tracing::debug!(conn = self.conn, node = %describe(&node), "client sent");
        let delay = self.shared.world.lock().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match node.tag.as_ref() {
            "iq" => iq::handle(self, &node),
            "message" => crate::messages::from_device(self, &node).await,
            "receipt" => {
                if crate::nodes::attr(&node, "type").as_deref() == Some("server-error") {
                    crate::media::on_server_error_receipt(self, &node);
                }
                crate::offline::acknowledged(self, &node);
                crate::messages::from_device_other(self, &node);
            }
            "notification" | "call" | "chatstate" | "presence" => {
                crate::messages::from_device_other(self, &node)
            }
            "ack" => crate::offline::acknowledged(self, &node),
            _ => {}
        }
    }

    /// Answers the client on this connection.
    pub fn reply(&self, node: Node) {
        tracing::debug!(conn = self.conn, node = %describe(&node), "server sent");
        self.shared.world.send(self.conn, node);
    }

    /// The companion answered `pair-success` with its signature: the device
    /// exists now. WhatsApp then restarts the stream (515) so the client
    /// logs in as that device.
    pub fn finish_pairing(&mut self, request: &Node) {
        let world = self.shared.world.clone();
        let mut state = world.lock();
        let registration = match state.conns.get(&self.conn).map(|c| &c.role) {
            Some(Role::Registering(r)) => (**r).clone(),
            _ => return,
        };
        let Some((phone, device)) = registration.pairing.clone() else {
            return;
        };
        if child(request, "pair-device-sign").is_none() {
            tracing::warn!(conn = self.conn, id = ?attr(request, "id"), "pairing answer without signature");
            return;
        }
        let Some(account) = state.accounts.get_mut(&phone) else {
            return;
        };
        let signed_identity = child(request, "pair-device-sign")
            .and_then(|s| child(s, "device-identity"))
            .and_then(crate::nodes::bytes)
            .map(<[u8]>::to_vec);
        account.devices.insert(
            device,
            crate::world::Device {
                noise_pub: registration.noise_pub,
                identity_pub: registration.identity_pub,
                registration_id: registration.registration_id,
                signed_prekey: registration.signed_prekey.clone(),
                prekeys: Vec::new(),
                signed_identity,
                conn: None,
                key_shared: false,
            },
        );
        drop(state);
        world.emit(SimEvent::Paired { phone, device });
        self.reply(NodeBuilder::new("stream:error").attr("code", "515").build());
        world.close(self.conn);
    }

    pub fn close(&mut self) {
        let mut state = self.shared.world.lock();
        state.conns.remove(&self.conn);
        if let Some((phone, device)) = &self.me
            && let Some(d) = state
                .accounts
                .get_mut(phone)
                .and_then(|a| a.devices.get_mut(device))
            && d.conn == Some(self.conn)
        {
            d.conn = None;
        }
    }
}

fn failure(code: u16) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", code.to_string())
        .attr("location", "sim")
        .build()
}
