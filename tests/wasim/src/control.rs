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
    let world = &shared.world;
    let id = world.next_id();
    let mut state = world.lock();
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
                NodeBuilder::new("biz").attr("name", format!("Sim {phone}")).build(),
            ])
            .build()])
        .build();
    world.send(conn, pair_success);
    Ok(jid)
}

pub fn register_number(shared: &Shared, phone: &str) {
    shared.world.lock().directory.insert(phone.to_owned());
}

pub fn registered_numbers(shared: &Shared) -> Vec<String> {
    let state = shared.world.lock();
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
        (&Method::POST, "/control/numbers") => field(&parsed, "phone").map(|p| {
            register_number(shared, p);
            json!({})
        }),
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
        _ => Err(SimError::NotFound(format!("{method} {path}"))),
    };
    match outcome {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e @ SimError::NotFound(_)) => reply(StatusCode::NOT_FOUND, json!({ "error": e.to_string() })),
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    }
}
