//! What a test (or a script over HTTP) can make the world do. The Rust
//! handle [`crate::Sim`] and the `/control/*` routes both call these.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use wacore_binary::builder::NodeBuilder;

use crate::error::{Result, SimError};
use crate::nodes::SERVER;
use crate::phone;
use crate::server::Shared;
use crate::session::now_secs;
use crate::web::json as reply;
use crate::world::Role;

/// Acts as the phone of `phone` scanning `qr`: the companion showing it
/// becomes a new device of that account. Returns the device's JID.
pub fn scan_qr(shared: &Shared, qr: &str, phone: &str) -> Result<String> {
    let code = phone::parse_qr(qr)?;
    let state = shared.world.lock();
    let (conn, noise_pub, identity_pub) = state
        .conns
        .iter()
        .find_map(|(id, c)| match &c.role {
            Role::Registering(r) if r.refs.contains(&code.reference) => {
                Some((*id, r.noise_pub, r.identity_pub))
            }
            _ => None,
        })
        .ok_or_else(|| SimError::NotFound(format!("no companion shows ref {}", code.reference)))?;
    if noise_pub != code.noise_pub || identity_pub != code.identity_pub {
        return Err(SimError::BadRequest(
            "the QR keys are not those of the connection that shows it".into(),
        ));
    }
    drop(state);
    pair_success(shared, conn, phone, &code.identity_pub, &code.adv_secret)
}

/// The phone of `phone` vouches for the companion on `conn` (identity key
/// `identity_pub`, ADV secret `adv_secret`): `pair-success` with a new
/// device id. Returns the device's JID.
pub fn pair_success(
    shared: &Shared,
    conn: u64,
    phone: &str,
    identity_pub: &[u8; 32],
    adv_secret: &[u8; 32],
) -> Result<String> {
    let world = &shared.world;
    let id = world.next_id();
    let mut state = world.lock();
    let account = state.account(phone, id)?;
    let device = account.next_device;
    account.next_device += 1;
    let lid = account.lid.clone();
    let identity = phone::device_identity(
        &account.keys.identity,
        identity_pub,
        adv_secret,
        device,
        u32::from(device),
        now_secs(),
    )?;
    if let Some(Role::Registering(r)) = state.conns.get_mut(&conn).map(|c| &mut c.role) {
        r.pairing = Some((phone.to_owned(), device));
    }
    drop(state);
    let jid = format!("{phone}:{device}@s.whatsapp.net");
    let pair_success = NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("id", shared.next_iq_id())
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(identity).build(),
                NodeBuilder::new("platform").attr("name", "smbi").build(),
                NodeBuilder::new("device")
                    .attr("jid", jid.clone())
                    .attr("lid", format!("{lid}:{device}@lid"))
                    .build(),
                // A business name becomes the push name at pairing, so later
                // logins need not wait for it from app state.
                NodeBuilder::new("biz")
                    .attr("name", format!("Sim {phone}"))
                    .build(),
            ])
            .build()])
        .build();
    world.send(conn, pair_success);
    Ok(jid)
}

/// Puts a number on WhatsApp: an account whose phone the simulator plays.
pub fn register_number(shared: &Shared, phone: &str) -> Result<()> {
    let id = shared.world.next_id();
    shared.world.lock().account(phone, id).map(|_| ())
}

pub fn registered_numbers(shared: &Shared) -> Vec<String> {
    let mut numbers: Vec<String> = shared.world.lock().accounts.keys().cloned().collect();
    numbers.sort();
    numbers
}

pub fn refuse_logins(shared: &Shared, phone: &str, code: Option<u16>) {
    let mut state = shared.world.lock();
    match code {
        Some(code) => state.refuse_logins.insert(phone.to_owned(), code),
        None => state.refuse_logins.remove(phone),
    };
}

pub fn delay(shared: &Shared, delay: Duration) {
    shared.world.lock().delay = delay;
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| SimError::BadRequest(format!("missing string field `{name}`")))
}

fn device_field(body: &Value) -> Result<u16> {
    body.get("device")
        .and_then(Value::as_u64)
        .and_then(|d| u16::try_from(d).ok())
        .ok_or_else(|| SimError::BadRequest("missing numeric field `device`".into()))
}

/// The `/control/*` routes: JSON in, JSON out.
pub async fn http(
    shared: &Shared,
    method: &Method,
    path: &str,
    _query: &str,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
        }
    };
    let outcome: Result<Value> = match (method, path) {
        (&Method::GET, "/control/numbers") => Ok(json!(registered_numbers(shared))),
        (&Method::POST, "/control/numbers") => field(&parsed, "phone")
            .and_then(|p| register_number(shared, p))
            .map(|()| json!({})),
        (&Method::POST, "/control/scan") => field(&parsed, "qr")
            .and_then(|qr| scan_qr(shared, qr, field(&parsed, "phone")?))
            .map(|jid| json!({ "jid": jid })),
        (&Method::POST, "/control/refuse-logins") => field(&parsed, "phone").map(|p| {
            let code = parsed.get("code").and_then(Value::as_u64);
            refuse_logins(shared, p, code.and_then(|c| u16::try_from(c).ok()));
            json!({})
        }),
        (&Method::POST, "/control/delay") => {
            let millis = parsed.get("millis").and_then(Value::as_u64).unwrap_or(0);
            delay(shared, Duration::from_millis(millis));
            Ok(json!({}))
        }
        (&Method::POST, "/control/deliver") => field(&parsed, "id")
            .and_then(|id| receipt(shared, id, None))
            .map(|()| json!({})),
        (&Method::POST, "/control/read") => field(&parsed, "id")
            .and_then(|id| receipt(shared, id, Some("read")))
            .map(|()| json!({})),
        (&Method::POST, "/control/unlink") => field(&parsed, "phone")
            .and_then(|p| unlink(shared, p, device_field(&parsed)?))
            .map(|()| json!({})),
        (&Method::POST, "/control/drop") => field(&parsed, "phone")
            .and_then(|p| drop_connection(shared, p, device_field(&parsed)?))
            .map(|()| json!({})),
        (&Method::POST, "/control/pair-code") => field(&parsed, "code")
            .and_then(|code| crate::pair_code::enter(shared, code))
            .map(|jid| json!({ "phone": jid })),
        (&Method::POST, "/control/send-text") => match (
            field(&parsed, "from"),
            field(&parsed, "to"),
            field(&parsed, "text"),
        ) {
            (Ok(from), Ok(to), Ok(text)) => send_text(shared, from, to, text)
                .await
                .map(|id| json!({ "id": id })),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        _ => Err(SimError::NotFound(format!("{method} {path}"))),
    };
    match outcome {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e @ SimError::NotFound(_)) => {
            reply(StatusCode::NOT_FOUND, json!({ "error": e.to_string() }))
        }
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    }
}

/// The recipient of message `id` reports it `delivered` (None) or `read`.
pub fn receipt(shared: &Shared, id: &str, kind: Option<&str>) -> Result<()> {
    let world = &shared.world;
    let state = world.lock();
    let sent = state
        .sent
        .get(id)
        .cloned()
        .ok_or_else(|| SimError::NotFound(format!("no message {id}")))?;
    let conn = state
        .accounts
        .get(&sent.phone)
        .and_then(|a| a.devices.get(&sent.device))
        .and_then(|d| d.conn)
        .ok_or_else(|| SimError::NotFound(format!("{}:{} is offline", sent.phone, sent.device)))?;
    // Receipts name the recipient as it was addressed (phone or LID).
    let from = match state.find_user(&sent.to) {
        Some(a) if a.lid == sent.to => format!("{}@lid", a.lid),
        _ => format!("{}@s.whatsapp.net", sent.to),
    };
    drop(state);
    let mut node = NodeBuilder::new("receipt")
        .attr("id", id)
        .attr("from", from)
        .attr("t", now_secs().to_string());
    if let Some(kind) = kind {
        node = node.attr("type", kind);
    }
    world.send(conn, node.build());
    Ok(())
}

/// The connection of device `phone:device`, if it is online.
fn conn_of(shared: &Shared, phone: &str, device: u16) -> Result<u64> {
    shared
        .world
        .lock()
        .accounts
        .get(phone)
        .and_then(|a| a.devices.get(&device))
        .and_then(|d| d.conn)
        .ok_or_else(|| SimError::NotFound(format!("{phone}:{device} is offline")))
}

/// The phone removes companion `device`: it is forgotten, and if online it
/// gets the stream error WhatsApp sends to removed devices.
pub fn unlink(shared: &Shared, phone: &str, device: u16) -> Result<()> {
    let removed = shared
        .world
        .lock()
        .accounts
        .get_mut(phone)
        .and_then(|a| a.devices.remove(&device))
        .ok_or_else(|| SimError::NotFound(format!("no device {phone}:{device}")))?;
    if let Some(conn) = removed.conn {
        shared.world.send(
            conn,
            NodeBuilder::new("stream:error")
                .children([NodeBuilder::new("conflict")
                    .attr("type", "device_removed")
                    .build()])
                .build(),
        );
        shared.world.close(conn);
    }
    Ok(())
}

/// Closes the socket of `phone:device` without a word, as a network drop.
pub fn drop_connection(shared: &Shared, phone: &str, device: u16) -> Result<()> {
    let conn = conn_of(shared, phone, device)?;
    shared.world.close(conn);
    Ok(())
}

/// Sends `<stream:error code=..>` to `phone:device`, then closes.
pub fn stream_error(shared: &Shared, phone: &str, device: u16, code: u16) -> Result<()> {
    let conn = conn_of(shared, phone, device)?;
    shared.world.send(
        conn,
        NodeBuilder::new("stream:error")
            .attr("code", code.to_string())
            .build(),
    );
    shared.world.close(conn);
    Ok(())
}

/// The phone of `from` (an account the simulator plays) sends `text` to
/// every online companion of `to`, Signal-encrypted with their uploaded
/// keys. Returns the message id.
pub async fn send_text(shared: &Shared, from: &str, to: &str, text: &str) -> Result<String> {
    let message = waproto::whatsapp::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    };
    phone_sends(shared, from, to, None, &message).await
}

/// The phone of `from` sends `message` to the online companions of `to`
/// (only companion `device` when given). Returns the message id.
pub async fn phone_sends(
    shared: &Shared,
    from: &str,
    to: &str,
    device: Option<u16>,
    message: &waproto::whatsapp::Message,
) -> Result<String> {
    phone_sends_as(shared, from, to, device, message, None).await
}

/// [`phone_sends`], the stanza naming `recipient`: how WhatsApp fans a
/// message its phone sent to someone out to the account's companions.
pub async fn phone_sends_as(
    shared: &Shared,
    from: &str,
    to: &str,
    device: Option<u16>,
    message: &waproto::whatsapp::Message,
    recipient: Option<&str>,
) -> Result<String> {
    let world = &shared.world;
    let id = world.next_id();
    let (signal, targets) = {
        let mut state = world.lock();
        let signal = state.account(from, id)?.signal.clone();
        let target = state
            .accounts
            .get_mut(to)
            .ok_or_else(|| SimError::NotFound(format!("{to} is not on WhatsApp")))?;
        let targets: Vec<_> = target
            .devices
            .iter_mut()
            .filter(|(n, _)| device.is_none_or(|d| d == **n))
            .filter_map(|(n, d)| {
                let conn = d.conn?;
                let prekey = (!d.prekeys.is_empty()).then(|| d.prekeys.remove(0));
                Some((*n, d.clone(), prekey, conn))
            })
            .collect();
        (signal, targets)
    };
    if targets.is_empty() {
        return Err(SimError::NotFound(format!(
            "no companion of {to} is online"
        )));
    }
    let mut plaintext = buffa::Message::encode_to_vec(message);
    // WhatsApp pads plaintexts with 1..=16 bytes, each the pad length.
    let pad = (rand::random::<u8>() & 0x0f) + 1;
    plaintext.resize(plaintext.len() + usize::from(pad), pad);
    let message_id = format!("3EB0{:016X}", rand::random::<u64>());
    let mut signal = signal.lock().await;
    for (device_id, device, prekey, conn) in targets {
        let (kind, sealed) = signal
            .encrypt(to, device_id, &device, prekey, &plaintext)
            .await?;
        let mut stanza = NodeBuilder::new("message")
            .attr("from", format!("{from}@s.whatsapp.net"))
            .attr("id", message_id.clone())
            .attr("type", "text")
            .attr("t", now_secs().to_string())
            .attr("notify", format!("Sim {from}"));
        if let Some(recipient) = recipient {
            stanza = stanza.attr("recipient", recipient.to_owned());
        }
        let stanza = stanza
            .children([NodeBuilder::new("enc")
                .attr("v", "2")
                .attr("type", kind)
                .bytes(sealed)
                .build()])
            .build();
        crate::offline::queue(&mut world.lock(), to, device_id, &message_id, &stanza);
        world.send(conn, stanza);
    }
    Ok(message_id)
}

/// The phone shares an app-state sync key with its new companion, as
/// WhatsApp's phones do right after pairing: the client waits for it (up
/// to 10 s) before its first app-state sync.
pub async fn share_app_state_key(shared: &Shared, phone: &str, device: u16) -> Result<String> {
    use waproto::whatsapp::message as m;
    // One key per phone, kept: the patches it serves later are encrypted
    // with it.
    let (key_id, key_data) = {
        let mut state = shared.world.lock();
        let app = state
            .app_state
            .entry(phone.to_owned())
            .or_insert_with(crate::appstate_seed::PhoneAppState::generate);
        (app.key_id.clone(), app.key_data)
    };
    let key = m::AppStateSyncKey {
        key_id: buffa::MessageField::some(m::AppStateSyncKeyId {
            key_id: Some(key_id),
        }),
        key_data: buffa::MessageField::some(m::AppStateSyncKeyData {
            key_data: Some(key_data.to_vec()),
            fingerprint: buffa::MessageField::some(m::AppStateSyncKeyFingerprint {
                raw_id: Some(rand::random()),
                current_index: Some(0),
                device_indexes: vec![0, u32::from(device)],
            }),
            timestamp: Some(i64::try_from(now_secs() * 1000).unwrap_or(i64::MAX)),
        }),
    };
    let message = waproto::whatsapp::Message {
        protocol_message: buffa::MessageField::some(m::ProtocolMessage {
            r#type: Some(m::protocol_message::Type::AppStateSyncKeyShare),
            app_state_sync_key_share: buffa::MessageField::some(m::AppStateSyncKeyShare {
                keys: vec![key],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    phone_sends(shared, phone, phone, Some(device), &message).await
}
